"""`RemoteMonitor`: POST each epoch's logs to a server, with the standard library only."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings

import numpy as np
import torch

from kestrel.callbacks.callback import Callback


def _scalar(value):
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        return value.item()
    return value


class RemoteMonitor(Callback):
    """Send `{"epoch": epoch, **logs}` to `root + path` at the end of every epoch.

    Args:
        root: The server's root URL. Defaults to "http://localhost:9000".
        path: The path on the server. Defaults to "/publish/epoch/end/".
        field: The form field holding the JSON data (when not `send_as_json`).
        headers: Optional dict of extra HTTP headers.
        send_as_json: Send a JSON body (`application/json`) instead of a form.

    Example: `model.fit(x, y, callbacks=[RemoteMonitor(root="http://localhost:9000")])`.
    """

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data",
                 headers=None, send_as_json=False):
        super().__init__()
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json

    def on_epoch_end(self, epoch, logs=None):
        send = {"epoch": epoch, **{k: _scalar(v) for k, v in (logs or {}).items()}}
        if self.send_as_json:
            body, kind = json.dumps(send).encode(), "application/json"
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode()
            kind = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.root + self.path, data=body, method="POST",
                                         headers={"Content-Type": kind, **(self.headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError):
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}",
                          stacklevel=2)
