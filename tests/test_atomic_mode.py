"""Files written atomically get the ordinary mode of a new file, not mkstemp's private 0600."""

import stat

from seqvad import atomic


def test_atomic_file_has_umask_mode(tmp_path):
    atomic.write_json(tmp_path / "metrics.json", {"auc": 0.5})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what any new file gets here
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
