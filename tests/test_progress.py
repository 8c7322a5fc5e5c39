"""Progress: bars on a terminal, plain lines (no carriage returns) in logs."""
import io
import sys

from wsscl_fast import progress


def test_logs_get_lines_with_an_eta_and_no_carriage_returns(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    overall = progress.Overall(3, "compare (class 3)", enabled=True)
    for name in ("retrain", "ft", "wsscl"):
        for _ in progress.step_bar(range(50), enabled=True, desc=name):
            pass
        overall.advance(name)
    overall.close()
    text = err.getvalue()
    assert "\r" not in text
    assert text.count("\n") == 3 and "compare (class 3): 2/3 done (ft)" in text and "ETA" in text


def test_terminal_gets_a_bar(monkeypatch):
    err = io.StringIO()
    err.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", err)
    overall = progress.Overall(2, "compare", enabled=True)
    overall.advance("retrain")
    overall.close()
    assert "compare" in err.getvalue() and "1/2" in err.getvalue()


def test_quiet_prints_nothing(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    overall = progress.Overall(2, "compare", enabled=False)
    overall.advance("retrain")
    list(progress.step_bar(range(3), enabled=False))
    assert err.getvalue() == ""
