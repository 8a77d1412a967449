"""The channels' ETag cache (sagemake.data.EtagCache): a file's ETag is read again whenever stat cannot vouch that
the file is the one it was read from."""

import os
import time

from sagemake.data import EtagCache, etag


def test_a_file_rewritten_in_place_with_its_size_and_time_put_back_gets_its_new_etag(tmp_path):
    """Same size, same modification time (set back, as cp -p, rsync -t or tar do), same inode: only the inode change
    time, which no tool can set back, tells the file was written. In this run's cache and in the next run's."""
    file, path = tmp_path / "part-00000.csv", tmp_path / "build/etags.json"
    file.write_bytes(b"row,1\n")
    before = file.stat()
    cache = EtagCache(path)
    first = cache.etag(file)
    cache.save()

    time.sleep(0.05)  # past the coarse tick of the filesystem's clock, so the change time moves
    with file.open("r+b") as handle:
        handle.write(b"row,2\n")
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = file.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns

    assert etag(file) != first
    assert cache.etag(file) == etag(file)
    assert EtagCache(path).etag(file) == etag(file)
