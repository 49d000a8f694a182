"""Schemathesis hooks for tokengate's admin and self-service APIs (loaded through SCHEMATHESIS_HOOKS).

They teach Schemathesis the two rules the OpenAPI document states in words only, because JSON
Schema has no keyword for them:

- `ip-network`, the format of an allow-list entry: an IPv4 or IPv6 address, or a CIDR whose
  host bits are zero (`10.0.0.0/8`; `10.1.2.3/8` is refused as a likely typo).
- `expires_at` must lie in the future: a generated expiry that is a valid date-time in the
  past is moved a year ahead before the request is sent, in positive cases only, so a
  schema-valid body stays one the API must accept.
"""

import datetime
import ipaddress

import schemathesis
from hypothesis import strategies as st


def _network(address, prefix):
    return str(ipaddress.ip_network((address, prefix), strict=False))


_networks = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.builds(_network, st.ip_addresses(v=4), st.integers(0, 32)),
    st.builds(_network, st.ip_addresses(v=6), st.integers(0, 128)),
)

schemathesis.openapi.format("ip-network", _networks)


def _in_the_past(value):
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        return False
    # A day of margin: the request must still be in the future when it arrives.
    return moment < datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)


@schemathesis.hook
def before_call(context, case, kwargs):
    """Runs before every request of every phase, the stateful one included."""
    meta = case.meta
    if meta is not None and not meta.generation.mode.is_positive:
        # A negative case stays as generated: it is refused whatever its expiry.
        return
    body = case.body
    if isinstance(body, dict) and _in_the_past(body.get("expires_at")):
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
        case.body = dict(body, expires_at=future.strftime("%Y-%m-%dT%H:%M:%SZ"))
