"""Store code versions known to build the very same parts as an earlier version.

A part's key hashes the source of CODE_FILES (sweep/store/build.py), so a refactor that moves
code but changes no number would orphan every cache (and, with it, the measured latencies a
run's costs come from). `SAME_BUILD_AS` maps the source hash of such a version to the earlier
code version whose parts it reuses. An entry is added only after building the same store with
both versions and finding every array equal (meta too, but for measured latencies and times).
It lives outside CODE_FILES, so adding an entry does not change the hash it names; any later
edit of a CODE_FILES file changes the hash, the entry stops applying and parts are rebuilt.
"""

SAME_BUILD_AS: dict[str, str] = {
    # the packages of issue 11 (sweep/data/, sweep/store/, trainers/frozen.py; main's issue-16
    # code merged) == main 072c45b: the tiny store (tests/conftest.py TINY, synthetic, CPU,
    # 2 threads) built by both, all 45 arrays and the meta equal
    "338eb821fd2d59d3": "920a5d535f6f453d",
    # the same, with only trainers/layout.py's docstring changed (it points at
    # docs/onednn-avx2-channels-last.md): no code changed
    "9930c5de80243654": "920a5d535f6f453d",
}
