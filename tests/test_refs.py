"""URL or local file, and the image name of a reference: one home (i2vkit/refs.py)."""

import pytest

from i2vkit.refs import (
    checked_url,
    image_name,
    image_stem,
    is_data_uri,
    is_remote,
    is_url,
    looks_like_url,
)

PNG_DATA = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    "ref,remote,url",
    [
        ("https://cdn.example.com/a.png", True, True),
        ("HTTP://cdn.example.com/a.png", True, True),  # a scheme's case never matters
        ("Https://cdn.example.com/a.png?x=1#top", True, True),
        (PNG_DATA, True, True),
        ("DATA:image/png;base64,AAAA", True, True),
        ("ftp://host/a.png", False, True),  # a URL, but not one fal fetches
        ("s3://bucket/a.png", False, True),
        ("C:\\shots\\a.png", False, False),  # a drive letter is no scheme
        ("C:/shots/a.png", False, False),
        ("/home/me/a.png", False, False),
        ("shots/http-notes.png", False, False),
        ("data.png", False, False),
        ("http_a.png", False, False),
    ],
)
def test_url_or_file(ref, remote, url):
    assert is_remote(ref) is remote
    assert is_url(ref) is url
    assert looks_like_url(ref) is (url and not is_data_uri(ref))


@pytest.mark.parametrize(
    "ref,name,stem",
    [
        ("/home/me/shots/beach.png", "beach.png", "beach"),
        ("C:\\Users\\me\\shots\\beach.png", "beach.png", "beach"),  # read on any platform
        ("shots\\sub/beach.final.jpg", "beach.final.jpg", "beach.final"),
        ("beach.png", "beach.png", "beach"),
        ("https://cdn.example.com/x/beach.png?token=abc&w=2", "beach.png", "beach"),
        ("HTTPS://cdn.example.com/x/beach.png#frag", "beach.png", "beach"),
        ("https://cdn.example.com/x/my%20beach.png", "my beach.png", "my beach"),
        ("https://cdn.example.com/x/beach/", "beach", "beach"),
        ("https://cdn.example.com/?id=3", "cdn.example.com", "cdn.example"),
        (PNG_DATA, "data:image/png", ""),
        ("data:,hello", "data:text/plain", ""),
        ("/home/me/.hidden", ".hidden", ".hidden"),
    ],
)
def test_image_name_and_stem(ref, name, stem):
    assert image_name(ref) == name
    assert image_stem(ref) == stem


def test_checked_url_lower_cases_the_scheme_and_says_what_is_wrong():
    assert checked_url("HTTPS://cdn.example.com/a.png?x=1") == (
        "https://cdn.example.com/a.png?x=1",
        "",
    )
    assert checked_url("ftp://host/a.png")[1] == "is not an http(s) URL"
    assert checked_url("https:///a.png")[1] == "has no host"
    assert checked_url("https://host:port/a.png")[1] == "has a port that is not a number"
