"""Wire protocols: the SageMaker control plane (AWS JSON 1.1), the runtime API (REST-JSON),
AWS-style errors, request validation against botocore's service model, and dockyard's own
admin routes."""
