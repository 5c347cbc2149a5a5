"""serve.py's web page, driven by a real headless browser (Debian's chromium and
chromium-driver, installed here when missing): a real photo uploaded, its
full-resolution result downloaded and checked, and a broken file answered by a
message on the page."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, colorized_chroma

BROWSER_PACKAGES = ("chromium", "chromium-driver")


def ensure_browser():
    """(chromium, chromedriver) paths; installs Debian's packages when missing and
    this is a root shell with apt-get (the project's machines), else fails saying how."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("the web page's test needs a browser: sudo apt-get install "
                    + " ".join(BROWSER_PACKAGES))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", *BROWSER_PACKAGES]):
        subprocess.run(cmd, check=True, capture_output=True, timeout=900, env=env)
    return shutil.which("chromium"), shutil.which("chromedriver")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page served by `python serve.py` on a free local port: its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    temp = tmp_path_factory.mktemp("serve_temp")  # where serve.py makes its folder
    with open(log, "w") as out:
        # A fractional upload limit: Gradio refused "2.5mb" until serve.py passed bytes.
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "serve.py"), "--port",
                                 str(port), "--max-upload-mb", "2.5"], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "TMPDIR": str(temp)})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(1)
        yield url, log
    finally:
        proc.terminate()  # SIGTERM, as systemd or docker stop it
        proc.wait(timeout=30)
    # A normal stop, its temporary folder (uploads, results) removed.
    assert proc.returncode == 0, log.read_text()
    assert os.listdir(temp) == [], os.listdir(temp)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = ensure_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def upload_and_colorize(driver, url, paths):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 240)
    picker = wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, "#uploads input[type=file]")))
    picker.send_keys("\n".join(paths))
    # The upload is done when every file is listed (the page breaks the name before
    # its extension, so the stem is looked for).
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        wait.until(ec.text_to_be_present_in_element((By.ID, "uploads"), stem))
    driver.find_element(By.CSS_SELECTOR, "#colorize").click()
    wait.until(lambda d: "colorized" in d.find_element(By.ID, "messages").text
               or "not colorized" in d.find_element(By.ID, "messages").text)
    return wait


def test_page_colorizes_a_real_photo_and_gives_it_back_full_size(page, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from skimage import data

    url, log = page
    photo = str(tmp_path / "chelsea.png")  # scikit-image's cat, 451 x 300: not a multiple of 8
    cv2.imwrite(photo, cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))
    wait = upload_and_colorize(browser, url, [photo])
    link = wait.until(lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, "#downloads a")
                                 if "chelsea_color" in (a.get_attribute("href") or "")])
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#slider img"))
    time.sleep(1)  # the slider's images finish drawing
    shot = os.environ.get("SERVE_SCREENSHOT") or str(tmp_path / "page.png")
    browser.save_screenshot(shot)
    assert cv2.imread(shot) is not None
    result = tmp_path / "result.png"
    with urllib.request.urlopen(link[0].get_attribute("href"), timeout=60) as r:
        result.write_bytes(r.read())
    result = str(result)
    # The input's size and lightness, and colour (chelsea's own mean chroma is ~18).
    assert colorized_chroma(photo, result) > 4.0, log.read_text()


def test_a_broken_file_gets_a_message_on_the_page(page, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, log = page
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a photo" * 10)
    good = tmp_path / "gray.png"
    gray = cv2.cvtColor(cv2.imread(os.path.join(ROOT, "resources", "photos", "astronaut.jpg")),
                        cv2.COLOR_BGR2GRAY)[::3, ::3]
    cv2.imwrite(str(good), gray)
    upload_and_colorize(browser, url, [str(broken), str(good)])
    messages = browser.find_element(By.ID, "messages").text
    assert "broken.jpg: not colorized" in messages, messages
    assert "gray.png: colorized" in messages, messages
    assert "Traceback" not in log.read_text()
    assert np.all([e.is_displayed() for e in browser.find_elements(By.ID, "messages")])


def test_the_pages_saturation_reaches_the_colorizer(tmp_path):
    import serve

    colorize = serve.Colorize(os.path.join(ROOT, "resources", "models", "real-photos.keras"),
                              str(tmp_path), 256, serve.MAX_PIXELS)
    photo = str(tmp_path / "astronaut.png")  # lossless: the result keeps the photo's L
    cv2.imwrite(photo, cv2.imread(os.path.join(ROOT, "resources", "photos", "astronaut.jpg")))
    chroma = {}
    for s in (0.0, 1.0):
        _, results, _ = colorize([photo], saturation=s)
        chroma[s] = colorized_chroma(photo, results[0])
        os.remove(results[0])
    assert chroma[0.0] < 0.6 and chroma[1.0] > 5.0


def test_two_requests_with_the_same_file_name_keep_their_own_results(tmp_path):
    """Two visitors' uploads of one name each get their own result file: the first
    one's download is neither replaced nor cut short by the second request."""
    import serve

    colorize = serve.Colorize(os.path.join(ROOT, "resources", "models", "real-photos.keras"),
                              str(tmp_path / "results"), 256, serve.MAX_PIXELS)
    os.makedirs(colorize.folder)
    astronaut = cv2.imread(os.path.join(ROOT, "resources", "photos", "astronaut.jpg"))
    first, second = tmp_path / "a" / "photo.png", tmp_path / "b" / "photo.png"
    for path, image in ((first, astronaut), (second, cv2.flip(astronaut, 0)[:200])):
        path.parent.mkdir()
        cv2.imwrite(str(path), image)
    _, (mine,), _ = colorize([str(first)])
    kept = Path(mine).read_bytes()
    _, (theirs,), _ = colorize([str(second)])
    assert mine != theirs and os.path.basename(mine) == os.path.basename(theirs)
    assert Path(mine).read_bytes() == kept
    assert cv2.imread(mine).shape == astronaut.shape
    assert cv2.imread(theirs).shape == (200, *astronaut.shape[1:])
