"""Files written atomically get the ordinary mode of a new file, not mkstemp's private 0600."""

import os
import stat

from seqvad.atomic import write_json


def test_atomic_file_has_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"auc": 0.5})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644
