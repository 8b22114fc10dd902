"""Data capture (``EndpointConfig.DataCaptureConfig``): sampled invocations written as JSON lines in
SageMaker's layout and format (``capture.py``). Beside asyncinference/ (whose ``storage.py`` it
writes with); api/ hands it each answered invocation."""
