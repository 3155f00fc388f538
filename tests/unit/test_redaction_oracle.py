"""The token shapes the README promises to mask (GitHub, GitLab, Slack, AWS, Stripe,
JWT, a URL's password), checked against an implementation we did not write: Yelp's
detect-secrets finds each generated secret in the text before masking, and none after.

The secrets follow their issuers' documented formats (token prefixes, lengths,
alphabets), in the places a plan, a log line or an API response shows them; a JWT is
made of real base64url JSON, with and without `_` and `-` in its parts.
"""

from __future__ import annotations

import base64
import json
import re
import string

import pytest
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.redact import REDACTED, mask_text

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
URL_SAFE = ALNUM + "_-"


def chars(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=size, max_size=size)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# (detect-secrets does not know fine-grained `github_pat_` tokens: tests of their own.)
github = st.builds(
    lambda prefix, body: f"{prefix}_{body}",
    st.sampled_from(["ghp", "gho", "ghu", "ghs", "ghr"]),
    chars(ALNUM, 36),
)
# GitLab's token prefixes (docs.gitlab.com, "Token prefixes"), each with its length.
GITLAB = {
    "glpat-": 20,
    "gldt-": 20,
    "glft-": 20,
    "glsoat-": 20,
    "glrt-": 20,
    "glcbt-": 20,
    "glimt-": 25,
    "glptt-": 40,
    "gloas-": 64,
}
gitlab = st.sampled_from(sorted(GITLAB)).flatmap(
    lambda prefix: chars(URL_SAFE, GITLAB[prefix]).map(lambda body: prefix + body)
)
slack = st.builds(
    lambda kind, team, user, body: f"xox{kind}-{team}-{user}-{body}",
    st.sampled_from("abposr"),
    chars(string.digits, 12),
    chars(string.digits, 13),
    chars(ALNUM, 24),
) | st.builds(
    lambda team, bot, body: f"https://hooks.slack.com/services/T{team}/B{bot}/{body}",
    chars(UPPER_ALNUM, 8),
    chars(UPPER_ALNUM, 10),
    chars(ALNUM, 24),
)
aws = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["AKIA", "ASIA", "ABIA", "ACCA"]),
    chars(UPPER_ALNUM, 16),
)
stripe = st.builds(
    lambda kind, body: f"{kind}_live_{body}", st.sampled_from(["sk", "rk"]), chars(ALNUM, 24)
)
jwt = st.builds(
    lambda claims, signature: ".".join(
        [
            _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
            _b64url(json.dumps(claims).encode()),
            _b64url(signature),
        ]
    ),
    st.dictionaries(
        st.sampled_from(["sub", "name", "iat", "role"]), st.text(ALNUM, max_size=12), min_size=1
    ),
    st.binary(min_size=32, max_size=32),
)
url_password = st.builds(
    lambda scheme, user, password: f"{scheme}://{user}:{password}@db.example.com:5432/app",
    st.sampled_from(["https", "postgresql", "redis", "amqp"]),
    chars(string.ascii_lowercase, 5),
    st.text(ALNUM + "~._-", min_size=6, max_size=20),
)

# Where a secret shows: a value alone, an environment line, a JSON string, free text.
PLACES = ["{}", "export API_VALUE={}", '{{"value": "{}"}}', "calling {} now", "'{}',"]

FAMILIES = {
    "GitHub": (github, GitHubTokenDetector),
    "GitLab": (gitlab, GitLabTokenDetector),
    "Slack": (slack, SlackDetector),
    "AWS": (aws, AWSKeyDetector),
    "Stripe": (stripe, StripeDetector),
    "JWT": (jwt, JwtTokenDetector),
    "URL password": (url_password, BasicAuthDetector),
}


def found(detector: type, text: str) -> list[str]:
    """What the detector's own patterns find in `text` (AWS: its access-key pattern, the
    shape the README names), but a masked value (REDACTED), which is no secret."""
    patterns = list(detector.denylist)
    if detector is AWSKeyDetector:
        patterns = patterns[:1]
    hits = []
    for pattern in patterns:
        for match in re.finditer(pattern, text):
            # The detector's group is the password of a URL; elsewhere its match.
            secret = match.group(1) if detector is BasicAuthDetector else match.group(0)
            if REDACTED not in secret:
                hits.append(secret)
    return hits


@pytest.mark.parametrize("family", sorted(FAMILIES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_detect_secrets_finds_no_secret_once_masked(family: str, data: st.DataObject) -> None:
    secrets, detector = FAMILIES[family]
    secret = data.draw(secrets)
    text = data.draw(st.sampled_from(PLACES)).format(secret)
    assert found(detector, text), "the generator makes what the oracle calls a secret"
    masked = mask_text(text)
    assert not found(detector, masked), masked
    assert REDACTED in masked
