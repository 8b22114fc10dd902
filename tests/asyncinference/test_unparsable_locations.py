"""A location that does not parse as a URL (an unclosed "[" of an IPv6 host: botocore's patterns
let it through) is refused with the reason, never an InternalFailure: as an InputLocation, an
output location, or an https:// object URL."""

from __future__ import annotations

import pytest

from dockyard.asyncinference.object_urls import NotAnObjectUrl, s3_object
from dockyard.asyncinference.storage import Location, Storage, StorageError

BROKEN = "[::1"


def test_an_unparsable_s3_or_file_location_is_a_storage_error() -> None:
    with pytest.raises(StorageError) as info:
        Location.parse(f"s3://{BROKEN}/out")
    assert str(info.value) == f"s3://{BROKEN}/out does not parse as a URL (Invalid IPv6 URL)"


def test_an_unparsable_input_location_is_a_storage_error_naming_it() -> None:
    with pytest.raises(StorageError) as info:
        Storage("us-east-1", None).locate(f"https://{BROKEN}/in")
    assert str(info.value) == f"https://{BROKEN}/in does not parse as a URL (Invalid IPv6 URL)"


def test_an_unparsable_https_url_is_not_an_object_url() -> None:
    with pytest.raises(NotAnObjectUrl) as info:
        s3_object(f"https://{BROKEN}/bucket/key", "https://s3.amazonaws.com")
    assert str(info.value).startswith(f"https://{BROKEN}/bucket/key is not an S3 object URL: it does not parse "
                                      "as a URL (Invalid IPv6 URL)")
