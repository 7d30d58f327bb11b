"""Start a local Ray cluster, or join one that `ray start --head` started, for `codesign sweep`.

Ray (2.52 and later) may run a cluster with token authentication: `ray start
--head` does whenever a token is on the head machine (RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), and `RAY_AUTH_MODE=token` forces
it. A driver that passes an explicit address does not pick that token up by
itself (Ray only does for `address="auto"`), and a refused driver retries for
about 20 s while its C++ core prints one warning a second. So before ray.init
we ask the head's GCS for its cluster id over plain gRPC, as ray.init would
first: without a token, then with the token Ray would send. The answers (in
milliseconds) say whether the cluster wants a token and whether ours is right,
and every refusal is one line that names what to set.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stage_ir.errors import UserError

INSTALL_HINT = ("codesign sweep needs Ray, the optional `cluster` extra: pip install '.[cluster]' "
                "(or pip install 'ray[default]')")
MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
WHERE_TOKEN = ("copy the head's ~/.ray/auth_token to {default} on this machine, or set RAY_AUTH_TOKEN to "
               "what `ray get-auth-token` prints on the head")
_QUIET = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    if ray is None:  # sys.modules['ray'] = None also means "not installed"
        raise UserError(INSTALL_HINT)
    return ray


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"cluster address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379 from `ray start --head`)")
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """ray.init on a dead address hangs for minutes; a plain TCP connect says so in seconds."""
    try:
        socket.create_connection(_host_port(address), timeout=3).close()
    except OSError as err:
        raise UserError(f"cannot reach the Ray cluster at {address} ({err.strerror or err}); start it with "
                        "`ray start --head` on the head node, or drop --address to run on this machine") from None


def _ask_gcs(address: str, metadata: tuple[tuple[str, str], ...]) -> str | None:
    """None if the GCS at address gives its cluster id, else the gRPC status name (UNAUTHENTICATED, ...)."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:  # HOST:PORT as given ([::1]:6379 keeps its brackets)
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=5, metadata=metadata)
        except grpc.RpcError as err:
            return err.code().name
    return None


def _default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def _token_source() -> str:
    """Where Ray takes the token from, in its documented order (for the messages only)."""
    if os.environ.get(TOKEN_ENV):
        return TOKEN_ENV
    if os.environ.get(TOKEN_PATH_ENV):
        return f"{TOKEN_PATH_ENV}={os.environ[TOKEN_PATH_ENV]}"
    return str(_default_token_path())


def _local_token() -> tuple[tuple[str, str], ...] | None:
    """The gRPC metadata carrying this machine's token as Ray loads it, or None if there is none."""
    from ray._raylet import AuthenticationTokenLoader
    from ray.exceptions import AuthenticationError

    loader = AuthenticationTokenLoader.instance()
    try:
        if not loader.has_token(ignore_auth_mode=True):
            return None
    except AuthenticationError as err:  # RAY_AUTH_TOKEN_PATH names a missing or empty file
        raise UserError(f"{err.message}; point {TOKEN_PATH_ENV} at the head's token file or unset it") from None
    return tuple(loader.get_token_for_http_header(ignore_auth_mode=True).items())


def _use_token_mode() -> None:
    # what Ray itself does for address="auto" with a token at hand: the mode is read from the
    # environment into Ray's cached config, so refresh that too
    from ray._raylet import Config

    os.environ[MODE_ENV] = "token"
    Config.initialize("")


def _token_support() -> bool:
    try:  # grpcio comes with ray[default], not plain `ray`; token authentication with Ray 2.52
        import grpc  # noqa: F401
        from ray._raylet import AuthenticationTokenLoader  # noqa: F401
        from ray.core.generated import gcs_service_pb2_grpc  # noqa: F401
    except ImportError:
        return False
    return True


def prepare_auth(address: str) -> None:
    """Make this process authenticate the way the cluster at address wants, or fail in one line."""
    if not _token_support():  # ray.init decides on its own
        return
    mode = os.environ.get(MODE_ENV, "").lower()
    at = f"the Ray cluster at {address}"
    where = WHERE_TOKEN.format(default=_default_token_path())
    if mode == "token" and _local_token() is None:
        raise UserError(f"{MODE_ENV}=token is set here but no Ray token is on this machine: {where}")
    refusal = _ask_gcs(address, ())
    if refusal is None:  # the cluster runs without authentication
        return
    if refusal != "UNAUTHENTICATED":
        raise UserError(f"{address} does not answer as a Ray cluster head ({refusal}); give the address "
                        "`ray start --head` printed (HOST:6379 unless --port was given)")
    if mode == "disabled":
        raise UserError(f"{at} requires token authentication but {MODE_ENV}=disabled is set here: unset it "
                        f"(codesign then sends the token from {TOKEN_ENV}, {TOKEN_PATH_ENV} or ~/.ray/auth_token)")
    token = _local_token()
    if token is None:
        raise UserError(f"{at} requires token authentication and no Ray token is on this machine: {where}")
    if _ask_gcs(address, token) is not None:
        raise UserError(f"{at} refused the token from {_token_source()}: set {TOKEN_ENV} to what "
                        "`ray get-auth-token` prints on the head (or copy the head's ~/.ray/auth_token here)")
    if mode != "token":
        _use_token_mode()


@contextmanager
def _stderr_captured() -> Iterator[None]:
    """Send file descriptor 2 to a scratch file: Ray's C++ core writes its retry warnings there, not via Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def connect(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local one; True if this call started Ray (so it shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        if address != "auto":
            _check_reachable(address)
            if "://" not in address:  # a GCS address (ray:// is Ray Client, another protocol)
                prepare_auth(address)
        try:
            with _stderr_captured():
                ray.init(address=address, **_QUIET)
        except Exception as err:  # ConnectionError, version mismatch, auth: one line for the user
            raise UserError(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}") from None
    else:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        # "local": a new cluster even if this machine already runs one (ray.init() alone would join it)
        ray.init(address="local", num_cpus=cpus, **_QUIET)
    return True
