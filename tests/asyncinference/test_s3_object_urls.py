"""Which S3 object an https:// InputLocation names (asyncinference/object_urls.py): the URL shapes
S3 and S3-compatible servers use, and the URLs refused, each with its reason."""

from __future__ import annotations

import pytest

from dockyard.asyncinference.object_urls import NotAnObjectUrl, s3_object

AWS = "https://s3.amazonaws.com"  # the client's endpoint with no AWS_ENDPOINT_URL_S3, us-east-1
LOCAL = "http://127.0.0.1:9000"  # an S3-compatible server on loopback


@pytest.mark.parametrize(("url", "endpoint", "expected"), [
    # virtual-hosted
    ("https://bucket.s3.amazonaws.com/key", AWS, ("bucket", "key")),
    ("https://bucket.s3.us-east-1.amazonaws.com/dir/key.csv", AWS, ("bucket", "dir/key.csv")),
    ("https://bucket.s3-eu-west-1.amazonaws.com/key", AWS, ("bucket", "key")),
    ("https://bucket.s3.dualstack.ap-southeast-2.amazonaws.com/key", AWS, ("bucket", "key")),
    ("https://bucket.s3.cn-north-1.amazonaws.com.cn/key", AWS, ("bucket", "key")),
    ("https://bucket.s3.us-gov-west-1.amazonaws.com/key", AWS, ("bucket", "key")),
    ("https://my.dotted.bucket.s3.us-west-2.amazonaws.com/key", AWS, ("my.dotted.bucket", "key")),
    ("https://Bucket.S3.US-EAST-1.AMAZONAWS.COM/Key", AWS, ("bucket", "Key")),  # host names ignore case; keys do not
    ("https://bucket.s3.amazonaws.com:443/key", AWS, ("bucket", "key")),
    # path style
    ("https://s3.amazonaws.com/bucket/key", AWS, ("bucket", "key")),
    ("https://s3.us-east-1.amazonaws.com/bucket/a/b/c", AWS, ("bucket", "a/b/c")),
    ("https://s3-us-west-2.amazonaws.com/bucket/key", AWS, ("bucket", "key")),
    ("https://s3.amazonaws.com/Legacy_Bucket/key", AWS, ("Legacy_Bucket", "key")),
    # keys decoded as S3 decodes an object URL: %XX, and "+" is a space
    ("https://bucket.s3.amazonaws.com/my%20file%2B1.csv", AWS, ("bucket", "my file+1.csv")),
    ("https://bucket.s3.amazonaws.com/my+file.csv", AWS, ("bucket", "my file.csv")),
    ("https://bucket.s3.amazonaws.com/caf%C3%A9/%3Fq%23f", AWS, ("bucket", "café/?q#f")),
    ("https://bucket.s3.amazonaws.com/a//b/../c", AWS, ("bucket", "a//b/../c")),  # keys are not paths
    ("https://s3.amazonaws.com/bucket/%2Fleading", AWS, ("bucket", "/leading")),
    # path style on the configured endpoint: its host and port, whatever its scheme
    ("https://127.0.0.1:9000/bucket/in/x.csv", LOCAL, ("bucket", "in/x.csv")),
    ("https://127.0.0.1:9000/bucket/in%20x", LOCAL, ("bucket", "in x")),
    ("https://minio.internal/bucket/key", "http://minio.internal", ("bucket", "key")),
    ("https://minio.internal:80/bucket/key", "http://minio.internal", ("bucket", "key")),
    ("https://store.example/bucket/key", "https://store.example:443", ("bucket", "key")),
    ("https://[::1]:9000/bucket/key", "http://[::1]:9000", ("bucket", "key")),
    ("https://gw.example/s3/bucket/key", "https://gw.example/s3/", ("bucket", "key")),
    # an AWS URL is read through the configured client too, as s3://BUCKET/KEY would be
    ("https://bucket.s3.us-east-1.amazonaws.com/key", LOCAL, ("bucket", "key")),
])
def test_object_urls(url, endpoint, expected):
    assert s3_object(url, endpoint) == expected


@pytest.mark.parametrize(("url", "endpoint", "reason"), [
    ("https://example.com/bucket/key", AWS, "example.com is not an S3 endpoint"),
    ("https://169.254.169.254/latest/meta-data/", AWS, "169.254.169.254 is not an S3 endpoint"),
    ("https://bucket.s3.amazonaws.com.evil.example/key", AWS, "is not an S3 endpoint"),
    ("https://bucket.s3-accesspoint.us-east-1.amazonaws.com/key", AWS, "is not an S3 endpoint"),
    ("https://s3.not-a-region.amazonaws.com/bucket/key", AWS, "is not an S3 endpoint"),
    ("https://amazonaws.com/bucket/key", AWS, "is not an S3 endpoint"),
    ("https://bucket.s3.amazonaws.com:8443/key", AWS, "port 443, not 8443"),
    ("https://bucket.s3.amazonaws.com:x/key", AWS, "port is not a number"),
    ("https://bucket.s3.amazonaws.com/key?X-Amz-Signature=abc&X-Amz-Expires=60", AWS, "query string (a presigned URL?)"),
    ("https://bucket.s3.amazonaws.com/key?", AWS, "query string"),
    ("https://bucket.s3.amazonaws.com/key#part", AWS, "fragment"),
    ("https://user:secret@bucket.s3.amazonaws.com/key", AWS, "user information"),
    ("https://bucket.s3.amazonaws.com/", AWS, "names bucket bucket but no object key"),
    ("https://bucket.s3.amazonaws.com", AWS, "no object key"),
    ("https://s3.amazonaws.com/bucket", AWS, "no object key"),
    ("https://s3.amazonaws.com/bucket/", AWS, "no object key"),
    ("https://s3.amazonaws.com/", AWS, "names no bucket"),
    ("https://s3.amazonaws.com/bu%2Fcket/key", AWS, "'bu/cket' is not a bucket name"),
    ("http://bucket.s3.amazonaws.com/key", AWS, "not an https:// URL"),
    # the configured endpoint: another port, another host, outside its path
    ("https://127.0.0.1:9001/bucket/key", LOCAL, "127.0.0.1:9001 is not an S3 endpoint"),
    ("https://127.0.0.1/bucket/key", LOCAL, "127.0.0.1 is not an S3 endpoint"),
    ("https://localhost:9000/bucket/key", LOCAL, "localhost:9000 is not an S3 endpoint"),
    ("https://minio.internal:9000/bucket/key", "http://minio.internal", "is not an S3 endpoint"),
    ("https://gw.example/other/bucket/key", "https://gw.example/s3", "not under the configured endpoint's /s3/"),
    ("https://127.0.0.1:9000/bucket/key", None, "is not an S3 endpoint"),
])
def test_refused_urls(url, endpoint, reason):
    with pytest.raises(NotAnObjectUrl) as exc:
        s3_object(url, endpoint)
    message = str(exc.value)
    assert message.startswith(f"{url} is not an S3 object URL: ")
    assert reason in message
    assert "s3://BUCKET/KEY" in message


def test_refusal_names_the_configured_endpoint_shape():
    with pytest.raises(NotAnObjectUrl) as exc:
        s3_object("https://example.com/bucket/key", LOCAL)
    assert "https://127.0.0.1:9000/BUCKET/KEY on the configured S3 endpoint" in str(exc.value)
    with pytest.raises(NotAnObjectUrl) as exc:
        s3_object("https://example.com/bucket/key", AWS)
    assert "configured S3 endpoint" not in str(exc.value)
