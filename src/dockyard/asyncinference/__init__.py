"""Asynchronous inference (InvokeEndpointAsync): the durable queue and its workers
(``queue.py``), request records and endpoint settings (``requests.py``), s3:// and file://
storage (``storage.py``), SNS notifications (``notify.py``) and the backlog metrics
(``metrics.py``). Sits between api/ (which accepts requests) and control/ (whose store keeps
them) and reaches containers through gateway/."""
