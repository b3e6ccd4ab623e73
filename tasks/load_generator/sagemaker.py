"""A SageMaker endpoint as a load target: boto3 ``sagemaker-runtime`` ``invoke_endpoint``, one client per process.

The calls block, so each process runs them in a thread pool of ``connections`` threads (the client's
connection pool has as many); a call that waited for a thread past ``timeout`` is a timeout without being sent.
No retries (one attempt per scheduled request); credentials from boto3's usual chain.

Error classes (``errors`` of a step):

=================================================  ============
what boto3 raised                                   class
=================================================  ============
``ReadTimeoutError``, ``ConnectTimeoutError``;      timeout
an answer later than ``timeout``
``ModelError`` (HTTP 424: the model container       its ``OriginalStatusCode``'s class: 4xx for 400–499,
answered with an error)                             else 5xx (also when absent)
``ValidationError`` (400), ``ThrottlingException``  4xx — the HTTP status AWS sent; throttling is AWS refusing
(400), ``ModelNotReadyException`` (429), any other  the rate, counted with the other refusals
error answered with a 4xx status
``InternalFailure`` (500), ``ServiceUnavailable``   5xx
(503), ``InternalDependencyException`` (530), any
other error answered with a 5xx status
``EndpointConnectionError``, ``ConnectionClosed``,  connection
any other botocore or socket error
=================================================  ============
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tasks.load_generator.worker import CONNECTION, E4XX, E5XX, MAX_ANSWER_BYTES, OK, TIMEOUT

if TYPE_CHECKING:
    from tasks.load_generator.worker import WorkerSpec

Invoker = Callable[[bytes, float], tuple[int, float]]


def _status_class(status: int) -> int:
    return E4XX if 400 <= status < 500 else E5XX


def classify_client_error(response: dict[str, Any]) -> int:
    """The error class of a botocore ``ClientError``'s ``response`` (``Error.Code``, ``ResponseMetadata``, and the
    modelled members of the error, such as ``ModelError``'s ``OriginalStatusCode``, at its top level)."""
    error, metadata = response.get("Error") or {}, response.get("ResponseMetadata") or {}
    code = str(error.get("Code", ""))
    if code == "ModelError":
        original = response.get("OriginalStatusCode", error.get("OriginalStatusCode"))
        try:
            return _status_class(int(original)) if original is not None else E5XX
        except (TypeError, ValueError):
            return E5XX
    if code in ("ThrottlingException", "ValidationError", "ModelNotReadyException"):
        return E4XX
    if code in ("InternalFailure", "ServiceUnavailable", "InternalDependencyException"):
        return E5XX
    status = metadata.get("HTTPStatusCode")
    return _status_class(status) if isinstance(status, int) else E5XX


def check_credentials(spec: WorkerSpec) -> None:
    import boto3

    if boto3.session.Session(region_name=spec.region).get_credentials() is None:
        raise RuntimeError("no AWS credentials found (boto3's chain: environment, profile, instance role)")


def make_invoker(spec: WorkerSpec) -> Invoker:
    """A blocking ``(body, started) -> (outcome, end)`` for the worker's thread pool."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

    client = boto3.client(
        "sagemaker-runtime", region_name=spec.region, endpoint_url=spec.endpoint_url,
        config=Config(connect_timeout=spec.timeout, read_timeout=spec.timeout, max_pool_connections=spec.connections,
                      retries={"total_max_attempts": 1, "mode": "standard"}, tcp_keepalive=True))
    name, content_type, timeout = spec.endpoint_name, spec.content_type, spec.timeout
    perf = time.perf_counter

    def invoke(body: bytes, started: float) -> tuple[int, float]:
        if perf() - started > timeout:  # waited for a thread (a connection) past the timeout: never sent
            return TIMEOUT, perf()
        try:
            answer = client.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type)
            stream, size = answer["Body"], 0
            while chunk := stream.read(65536):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    return CONNECTION, perf()
            end = perf()
            return (TIMEOUT if end - started > timeout else OK), end
        except (ReadTimeoutError, ConnectTimeoutError):
            return TIMEOUT, perf()
        except ClientError as exc:
            return classify_client_error(dict(exc.response)), perf()
        except (BotoCoreError, OSError):
            return CONNECTION, perf()

    return invoke
