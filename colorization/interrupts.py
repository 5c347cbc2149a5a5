"""Ctrl-C and SIGTERM end an entry script with one line, never a traceback.

Batch systems, `docker stop`, `systemd` and `timeout` stop a job with SIGTERM,
whose default action kills Python without running `finally` blocks: serve.py's
temporary folder stayed behind and nothing was said. `run` turns SIGTERM into
the KeyboardInterrupt that Ctrl-C raises, so both take the same way out: every
writer in the project writes to a temporary name and renames when complete
(atomic_io), so an interrupted script leaves no half-written file under a final
name, and the line it prints says what the same command does next.
"""

import _thread
import signal
import sys
import threading
import time

# The shell's convention: 128 + the signal's number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be."""


# Python runs a signal handler between any two bytecodes of the main thread, also
# inside a garbage-collection callback or a __del__, where a raised exception is
# printed and dropped ("Exception ignored in: <function _xla_gc_callback ...>":
# seen with JAX's, the export then ran to the end). So after the first signal the
# exception is raised again every second until the script has handled it. Raised
# inside a C extension it may also come out as another error (TFLite's converter
# gave "SystemError: Objects/listobject.c:338"): `raise_if_pending` turns such an
# error back into the interrupt.
_state = {"signal": None, "handled": False}
REPEAT_S = 1.0


def _interrupt(signum):
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame):
    del frame
    if _state["handled"]:
        return
    if _state["signal"] is None:
        _state["signal"] = signum
        threading.Thread(target=_repeat, daemon=True, name="interrupt-repeat").start()
    raise _interrupt(_state["signal"])


def _repeat():
    while True:
        time.sleep(REPEAT_S)
        if _state["handled"]:
            return
        _thread.interrupt_main(_state["signal"])  # runs the handler in the main thread


def sigterm_as_interrupt():
    """From now on SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread,
    and Ctrl-C its KeyboardInterrupt, each raised again until handled."""
    _state.update(signal=None, handled=False)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def pending():
    """True once Ctrl-C or SIGTERM has arrived and no one has handled it yet."""
    return _state["signal"] is not None and not _state["handled"]


def raise_if_pending():
    """For an `except Exception` around foreign code: an error that arrived with an
    interrupt is the interrupt."""
    if pending():
        raise _interrupt(_state["signal"])


def handled(error=None):
    """Called where a script catches the interrupt: no further signal is raised.
    Returns the exit code for `error` (130 for Ctrl-C, 143 for SIGTERM)."""
    _state["handled"] = True
    return exit_code(error)


def exit_code(error):
    return EXIT_CODES[signal.SIGTERM if isinstance(error, Terminated) else signal.SIGINT]


def run(main, script, then="finished outputs are complete; nothing half-written is left"):
    """sys.exit(run(main, "x.py", "what is left and what the same command does next"))."""
    sigterm_as_interrupt()
    try:
        code = main()
        raise_if_pending()  # an interrupt that some library swallowed
        return code
    except KeyboardInterrupt as e:
        code = handled(e)
        print(f"{script}: interrupted; {then}", file=sys.stderr)
        return code
    finally:
        _state["handled"] = True
