"""``"imagenet"``: fetch the keras-applications ImageNet file into the Keras cache.

The cache is ``~/.keras/models``; fetching needs the network unless the file is already there. A
failure names the file to fetch by hand.
"""

import contextlib
import socket

import keras

from tfseg.encoders.weights.legacy_h5 import legacy_file_name

_KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
# Published md5 of the no-top files (keras-applications); None: not published.
_NOTOP_MD5 = {
    "vgg16": "6d6bbae143d832006294945121d1f1fc",
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet101": "88cf7a10940856eca736dc7b7e228a21",
}
_DOWNLOAD_SOCKET_TIMEOUT_S = 30


def fetch_imagenet_file(encoder_name, encoder_kwargs):
    """Path of the cached ImageNet weights file of ``encoder_name`` (downloaded if needed)."""
    file_name = legacy_file_name(encoder_name, **encoder_kwargs)
    folder = {"vgg16": "vgg16", "mobilenet": "mobilenet", "mobilenetv2": "mobilenet_v2"}.get(
        encoder_name, "resnet"
    )
    url = f"{_KERAS_APPS_URL}/{folder}/{file_name}"
    try:
        with _socket_timeout(_DOWNLOAD_SOCKET_TIMEOUT_S):
            return keras.utils.get_file(
                file_name, url, cache_subdir="models", file_hash=_NOTOP_MD5.get(encoder_name)
            )
    except Exception as e:  # noqa: BLE001  (get_file raises a bare Exception on URL failures)
        raise RuntimeError(
            f"could not fetch the ImageNet weights of {encoder_name!r} ({file_name}): {e}. "
            f"Download {url} on a machine with internet access and pass "
            f"--encoder_weights=/path/to/{file_name} (or put it in ~/.keras/models/)"
        ) from None


@contextlib.contextmanager
def _socket_timeout(seconds):
    """Bound each network operation of the download (only where no default timeout is set)."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
