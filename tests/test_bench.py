"""``bench/``'s results machinery: each run's figures in ``bench/results/<name>.json``, ``bench/RESULTS.md`` from them."""
import json
import shutil
import subprocess
import sys

from bench import record, report

from tests.conftest import ROOT


def test_a_run_writes_its_figures_with_date_machine_and_command(tmp_path):
    results = tmp_path / "results"
    rows = [["lstm", 20, 24563.7, 18011.2, 1.364]]
    record.save("layers", [record.table("tokens/s", ["cell", "batch", "ours", "keras", "ours/keras"], rows)],
                {"lowest ratio": 1.364}, ["--steps", "2", "--batch", "20"], results)
    saved = json.loads((results / "layers.json").read_text())
    assert saved["command"] == "python bench/layers.py --steps 2 --batch 20"
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["cpu"]
    assert saved["date"][:2] == "20" and "transcribed_from" not in saved
    assert saved["tables"][0]["rows"] == rows and saved["figures"] == {"lowest ratio": 1.364}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["RESULTS.md", "layers.json", "results"]  # no temp left
    page = (tmp_path / "RESULTS.md").read_text()
    assert "## layers: `python bench/layers.py --steps 2 --batch 20`" in page
    assert "| lstm | 20 | 24,564 | 18,011 | 1.36 |" in page and "- lowest ratio: 1.36" in page


def test_results_md_is_what_report_makes_of_the_results_files(tmp_path):
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "results")
    subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"), "--results", str(tmp_path / "results")],
                   check=True, capture_output=True, cwd=tmp_path)
    assert (tmp_path / "RESULTS.md").read_text() == (ROOT / "bench" / "RESULTS.md").read_text()


def test_transcribed_figures_say_so():
    """Figures copied from an old README must not pass for a fresh run of this code."""
    for path in (ROOT / "bench" / "results").glob("*.json"):
        result = json.loads(path.read_text())
        assert {"bench", "date", "machine", "command", "tables", "figures"} <= set(result), path
        if "transcribed_from" in result:
            assert "Not a fresh run" in report.section(result)
