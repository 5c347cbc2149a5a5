"""convert_model.py --fetch against a local HTTP server on 127.0.0.1 (nothing
reaches the internet): download, resume after a cut, checksum refusal, 404 and an
unreachable host, conversion, the cache, and model_transform.py --model NAME."""

import hashlib
import http.server
import os
import threading

import pytest
import torch_release as tr
from conftest import ROOT, run_main, run_transform

import convert_model
from colorization import fetch

PTH = os.path.join(ROOT, "tests", "fixtures", "zhang_pytorch", "eccv16-w0125.pth")


class Server:
    """Serves a dict of name -> bytes with Range support; `cut` names are sent only
    half-way on their first full request (the connection then closes)."""

    def __init__(self, files):
        self.files, self.cut, self.requests = files, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data = server.files[name]
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if start >= len(data):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if name in server.cut and not start:
                    server.cut.discard(name)
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """The Torch 7 and PyTorch fixtures as two releases with their real checksums."""
    folder = tmp_path_factory.mktemp("release")
    top, _, _ = tr.release(width=0.25, seed=3, num_classes=4)
    t7 = tr.serialize(top)
    with open(PTH, "rb") as f:
        pth = f.read()
    sha = hashlib.sha256(pth).hexdigest()[:8]
    files = {"colornet.t7": t7, f"eccv16-{sha}.pth": pth}
    server = Server(files)
    yield server, {
        "iizuka-test": fetch.Release(
            "iizuka-test", "a small Torch 7 release", (fetch.Source(
                "http://example.invalid/colornet.t7", md5=hashlib.md5(t7).hexdigest(),
                sha1=hashlib.sha1(t7).hexdigest(), size_mb=len(t7) / 1e6),),
            "test", "tests/test_fetch.py", "the fixture"),
        "zhang-test": fetch.Release(
            "zhang-test", "a small PyTorch release", (fetch.Source(
                f"http://example.invalid/eccv16-{sha}.pth", sha256_prefix=sha),),
            "test", "tests/test_fetch.py", "the fixture"),
    }, folder
    server.close()


@pytest.fixture()
def registry(releases, monkeypatch, tmp_path):
    server, entries, _ = releases
    monkeypatch.setattr(fetch, "RELEASES", {**fetch.RELEASES, **entries})
    monkeypatch.setenv("COLORIZATION_CACHE", str(tmp_path / "cache"))
    server.requests.clear()
    return server


def convert(*args):
    return run_main(convert_model.main, [str(a) for a in args])


def test_fetch_resumes_a_cut_download_checks_converts_and_caches(registry, tmp_path):
    registry.cut.add("colornet.t7")
    done = convert("--fetch", "iizuka-test", "--mirror", registry.url)
    assert done.returncode == 0, done.stderr[-1500:]
    ranges = [r for name, r in registry.requests if name == "colornet.t7"]
    size = len(registry.files["colornet.t7"])
    assert ranges == [None, f"bytes={size // 2}-"]  # the second request resumed from half
    model = tmp_path / "cache" / "iizuka-test.keras"
    assert model.exists() and "Torch 7 release" in done.stdout
    card = (tmp_path / "cache" / "iizuka-test.md").read_text(encoding="utf-8")
    assert "MD5 and SHA-1" in card and hashlib.sha256(registry.files["colornet.t7"]).hexdigest() \
        in card
    again = convert("--fetch", "iizuka-test", "--mirror", registry.url)
    assert again.returncode == 0 and "already converted" in again.stdout
    assert len(registry.requests) == 2  # the second call used the cache
    import cv2
    from clips import scene_frame

    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), scene_frame(0, 64, 48))
    proc = run_transform(photo, "--model", "iizuka-test")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert (tmp_path / "p_color.png").exists()


def test_a_part_left_by_a_killed_run_is_resumed(registry, tmp_path):
    name = next(n for n in registry.files if n.endswith(".pth"))
    data = registry.files[name]
    folder = tmp_path / "cache" / "downloads" / "zhang-test"
    folder.mkdir(parents=True)
    (folder / (name + ".part")).write_bytes(data[:1000])
    done = convert("--fetch", "zhang-test", "--mirror", registry.url, "--out",
                   tmp_path / "z.keras")
    assert done.returncode == 0, done.stderr[-1500:]
    assert registry.requests == [(name, "bytes=1000-")]
    assert (tmp_path / "z.keras").exists() and "PyTorch release" in done.stdout


def test_a_wrong_checksum_is_refused_and_the_file_removed(registry, tmp_path, monkeypatch):
    server = registry
    name = "colornet.t7"
    original = server.files[name]
    monkeypatch.setitem(server.files, name, original[:-1] + bytes([original[-1] ^ 1]))
    done = convert("--fetch", "iizuka-test", "--mirror", server.url)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("convert_model.py: error: colornet.t7: MD5 ")
    assert "removed" in lines[-1] and "Traceback" not in done.stderr
    folder = tmp_path / "cache" / "downloads" / "iizuka-test"
    assert not any(folder.iterdir()) and not (tmp_path / "cache" / "iizuka-test.keras").exists()


def test_a_404_and_an_unreachable_host_are_one_line_each(registry, tmp_path):
    done = convert("--fetch", "iizuka-test", "--mirror", registry.url + "/gone")
    assert done.returncode == 1 and "HTTP 404" in done.stderr.strip().splitlines()[-1]
    done = convert("--fetch", "iizuka-test", "--mirror", "http://127.0.0.1:9")
    assert done.returncode == 1 and "cannot reach" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "cache" / "iizuka-test.keras").exists()


@pytest.mark.usefixtures("registry")  # the cache is the test's own, so nothing is fetched
def test_list_and_a_missing_model_name_say_what_to_do(tmp_path):
    done = convert("--list")
    assert done.returncode == 0
    for name in ("iizuka2016", "iizuka2016-imagenet", "zhang2016", "zhang2016-caffe"):
        assert name in done.stdout
    assert "c88fa2bb6dc9f942a492a7dc7009b966" == fetch.RELEASES["iizuka2016"].files[0].md5
    proc = run_transform(tmp_path / "x.jpg", "--model", "zhang2016")
    assert proc.returncode == 2 and "convert_model.py --fetch zhang2016" in proc.stderr
