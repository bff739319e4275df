"""Checks shared by the client scripts: each failed check raises, so the script
exits non-zero with a traceback; passed checks are counted for the summary."""

count = 0


def eq(what, got, want):
    """Checks got == want."""
    global count
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")
    count += 1


def fails(what, fn, want, exc):
    """Checks that fn() raises exc with want in its message."""
    global count
    try:
        got = fn()
    except exc as e:
        if want not in str(e):
            raise AssertionError(f"{what}: error {e!r}, want one containing {want!r}") from e
        count += 1
        return
    raise AssertionError(f"{what}: no error (got {got!r}), want {want!r}")


def addr(s):
    """Splits HOST:PORT."""
    host, port = s.rsplit(":", 1)
    return host, int(port)
