"""The report's metadata (analysis/metadata.py): numbers rounded for reading, the CPU's model
named (sweep/results/manifest.py), every string escaped."""
import platform

from analysis.metadata import kv, metadata_html, rounded
from sweep.results.manifest import cpu_model


def test_floats_are_rounded_to_four_significant_digits_everywhere():
    value = {"ms": 3.6918734312057495, "nested": [0.000123456789, "x", {"f": 123456.7}],
             "n": 5, "flag": True}
    assert rounded(value) == {"ms": 3.692, "nested": [0.0001235, "x", {"f": 123500.0}],
                              "n": 5, "flag": True}
    assert "3.692" in kv({"latency": 3.6918734312057495}) and "3.69187" not in kv(
        {"latency": 3.6918734312057495})


def test_metadata_names_the_cpu_model_and_escapes(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                    "model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t: avx2\n")
    assert cpu_model(info) == "AMD EPYC 7B13 64-Core Processor"
    assert cpu_model(tmp_path / "missing") == (platform.processor() or platform.machine())
    page = metadata_html({"hardware": {"cpu": "<b>cpu</b>"}, "costs": {"experts": {
        "deit": {"latency_ms": 5.66734}}}, "status": "complete"})
    assert "&lt;b&gt;cpu&lt;/b&gt;" in page and "<b>cpu" not in page
    assert "5.667" in page and "5.66734" not in page


def test_the_manifest_records_the_code_version(tmp_path):
    import subprocess
    from sweep.results.manifest import NOT_GIT, code_version
    assert code_version(tmp_path) == {"git_commit": NOT_GIT, "git_dirty": None}
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run(git + ["add", "a.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    sha = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert code_version(tmp_path) == {"git_commit": sha.strip(), "git_dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path)["git_dirty"] is True
    assert "Code" in metadata_html({"code": {"git_commit": sha.strip()}})
