from tests.security.test_ledger_tail import *  # noqa
from tests.security.test_ledger_tail import _restore  # noqa


def test_show(runs, s3, service_key):
    h = runs.promoted
    print("\n=== intact ===\n", audit(h).stdout)
    s3.delete(ledger_key(h.model, 5))
    r = audit(h)
    print("=== cut tail ===\n", r.stdout, r.stderr)
    _restore(s3, h)
    rewrite(s3, h, 5, lambda e: ("promotion-failed", {"run": e.payload["run"], "version": "1.0.0", "reason": "x"}), intruder())
    r = audit(h)
    print("=== rewrite (intruder) ===\n", r.stderr)
    _restore(s3, h)
