# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Screenshot a web page in headless Chromium once it shows a given text.

Chromium's own ``--screenshot`` cannot wait for a server-side computation
(``--virtual-time-budget`` fast-forwards the page's clock while the request
is pending), so this script drives headless Chromium through the DevTools
protocol: open the page, poll ``document.body.innerText`` until it contains
``--wait-text`` (and every ``<img>`` has loaded), then capture the viewport
as PNG. Used by the web demo's tests and for the README screenshot::

    python demo/web_demo.py &       # after bash tools/quickstart.sh
    python tools/misc/browser_screenshot.py \\
        "http://127.0.0.1:7860/?example=0" docs/figures/web_demo.png \\
        --wait-text "segmented in"

Needs Debian's ``chromium`` (``apt-get install chromium``; other names via
``--browser``) and ``websocket-client``.
"""
import argparse
import base64
import itertools
import json
import os.path as osp
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Optional, Sequence, Tuple

import websocket

#: Chromium flags: headless, no sandbox (root in containers), no GPU, a
#: throw-away profile, nothing fetched on its own.
CHROMIUM_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu',
                  '--hide-scrollbars', '--no-first-run',
                  '--disable-extensions', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--remote-debugging-port=0')


class DevToolsPage:
    """One page of a headless Chromium, driven by the DevTools protocol.

    Args:
        browser (str): Chromium executable (name on ``PATH`` or path).
        window_size (tuple[int, int]): Viewport (width, height) in px.
        timeout (float): Seconds to wait for the browser to start.

    Raises:
        FileNotFoundError: If the browser is not found.
        TimeoutError: If it does not open its DevTools port in time.
    """

    def __init__(self,
                 browser: str = 'chromium',
                 window_size: Tuple[int, int] = (1400, 1000),
                 timeout: float = 60.) -> None:
        executable = shutil.which(browser)
        if executable is None:
            raise FileNotFoundError(
                f'Browser {browser!r} not found on PATH (Debian: apt-get '
                'install chromium)')
        self._profile = tempfile.mkdtemp(prefix='devtools_profile_')
        self._ids = itertools.count(1)
        self._proc = subprocess.Popen([
            executable, *CHROMIUM_FLAGS, f'--user-data-dir={self._profile}',
            f'--window-size={window_size[0]},{window_size[1]}', 'about:blank'
        ],
                                      stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self._ws = None
        started = False
        try:
            port = self._wait_for_port(timeout)
            with urllib.request.urlopen(
                    f'http://127.0.0.1:{port}/json/list',
                    timeout=timeout) as response:
                targets = json.load(response)
            page = next(t for t in targets if t.get('type') == 'page')
            self._ws = websocket.create_connection(
                page['webSocketDebuggerUrl'],
                timeout=timeout,
                suppress_origin=True)
            self.call('Page.enable')
            self.call(
                'Emulation.setDeviceMetricsOverride',
                width=window_size[0],
                height=window_size[1],
                deviceScaleFactor=1,
                mobile=False)
            started = True
        finally:
            if not started:
                self.close()

    def _wait_for_port(self, timeout: float) -> int:
        port_file = osp.join(self._profile, 'DevToolsActivePort')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError('The browser exited with code '
                                   f'{self._proc.returncode} at start')
            if osp.isfile(port_file):
                with open(port_file) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    return int(first)
            time.sleep(0.1)
        raise TimeoutError(
            f'The browser opened no DevTools port within {timeout:.0f} s')

    def call(self, method: str, **params) -> dict:
        """Send a DevTools command and return its result.

        Raises:
            RuntimeError: If the browser answers with an error.
        """
        msg_id = next(self._ids)
        self._ws.send(
            json.dumps(dict(id=msg_id, method=method, params=params)))
        while True:
            message = json.loads(self._ws.recv())
            if message.get('id') != msg_id:
                continue  # an event
            if 'error' in message:
                raise RuntimeError(f'{method}: {message["error"]}')
            return message.get('result', {})

    def evaluate(self, expression: str):
        """Value of a JavaScript expression in the page."""
        result = self.call(
            'Runtime.evaluate', expression=expression, returnByValue=True)
        return result.get('result', {}).get('value')

    def wait_for(self,
                 expression: str,
                 timeout: float = 60.,
                 what: str = '') -> None:
        """Poll a JavaScript expression until it is truthy.

        Raises:
            TimeoutError: After ``timeout`` seconds; the message ends with
                the page's text.
        """
        deadline = time.monotonic() + timeout
        while not self.evaluate(f'!!({expression})'):
            if time.monotonic() > deadline:
                text = self.evaluate(
                    'document.body ? document.body.innerText : ""')
                raise TimeoutError(
                    f'{what or expression} not seen within {timeout:.0f} s; '
                    f'page text: {str(text)[:2000]!r}')
            time.sleep(0.25)

    def open(self,
             url: str,
             wait_text: Optional[str] = None,
             timeout: float = 60.) -> str:
        """Load ``url`` and wait until the page shows ``wait_text``.

        Waits for ``document.readyState == 'complete'``, then (with
        ``wait_text``) until ``document.body.innerText`` contains it, and
        until every ``<img>`` has loaded; 0.5 s more for the layout.

        Args:
            url (str): Page address.
            wait_text (str, optional): Text to wait for.
            timeout (float): Seconds.

        Returns:
            str: The page's ``innerText`` at the end.

        Raises:
            TimeoutError: If the text (or the images) do not appear in time.
        """
        self.call('Page.navigate', url=url)
        self.wait_for('document.readyState === "complete"', timeout,
                      f'{url} loaded')
        if wait_text is not None:
            self.wait_text(wait_text, timeout)
        return self.evaluate('document.body.innerText')

    def wait_text(self, text: str, timeout: float = 60.) -> str:
        """Wait until the page shows ``text`` and its images have loaded.

        Returns:
            str: The page's ``innerText``.

        Raises:
            TimeoutError: If not within ``timeout`` seconds.
        """
        self.wait_for(
            'document.body.innerText.includes('
            f'{json.dumps(text)}) && '
            'Array.from(document.images).every(i => i.complete)', timeout,
            repr(text))
        time.sleep(0.5)
        return self.evaluate('document.body.innerText')

    def set_files(self, selector: str, paths: Sequence[str]) -> None:
        """Choose files in the ``<input type=file>`` matching ``selector``
        (as a person picking them in the file dialog)."""
        found = self.call(
            'Runtime.evaluate',
            expression=f'document.querySelector({json.dumps(selector)})')
        object_id = found.get('result', {}).get('objectId')
        if object_id is None:
            raise RuntimeError(f'No element matches {selector!r}')
        self.call(
            'DOM.setFileInputFiles',
            files=[osp.abspath(p) for p in paths],
            objectId=object_id)

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element matching ``selector`` and type ``text``."""
        if not self.evaluate(f'(() => {{ const e = document.querySelector('
                             f'{json.dumps(selector)}); if (!e) return '
                             'false; e.focus(); return true; })()'):
            raise RuntimeError(f'No element matches {selector!r}')
        self.call('Input.insertText', text=text)

    def click(self, selector: str) -> None:
        """Click the element matching ``selector``."""
        if not self.evaluate(f'(() => {{ const e = document.querySelector('
                             f'{json.dumps(selector)}); if (!e) return '
                             'false; e.click(); return true; })()'):
            raise RuntimeError(f'No element matches {selector!r}')

    def screenshot(self, out_file: str) -> None:
        """Write the viewport as a PNG file."""
        data = self.call('Page.captureScreenshot', format='png')['data']
        with open(out_file, 'wb') as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        """Close the connection, end the browser, remove its profile."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> 'DevToolsPage':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Screenshot a page in headless Chromium once it shows '
        'a given text (DevTools protocol).')
    parser.add_argument('url', help='page address')
    parser.add_argument('out_file', help='PNG file to write')
    parser.add_argument(
        '--wait-text', default=None, help='wait until the page shows it')
    parser.add_argument(
        '--window-size',
        default='1400,1000',
        help='viewport WIDTH,HEIGHT in px (default: 1400,1000)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=120.,
        help='seconds to wait for the page (default: 120)')
    parser.add_argument(
        '--browser',
        default='chromium',
        help='Chromium executable (default: chromium)')
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.window_size.split(','))
    except ValueError:
        parser.error('--window-size must be WIDTH,HEIGHT, got '
                     f'{args.window_size!r}')
    args.window_size = (width, height)
    return args


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Take the screenshot; return the page text."""
    args = parse_args(argv)
    with DevToolsPage(args.browser, args.window_size, args.timeout) as page:
        text = page.open(args.url, args.wait_text, args.timeout)
        page.screenshot(args.out_file)
    print(f'{args.url} -> {args.out_file}')
    return text


if __name__ == '__main__':
    main()
