"""The Colab notebook: committed without outputs, and runs headless (TINY)."""

import json
import os
import re
import subprocess
import sys
import sysconfig

import nbclient
import nbformat
import pytest
import tensorflow as tf

from conftest import REPO
from gansynth import notebook_utils
from gansynth.config_schema import ConfigError

NOTEBOOK = os.path.join(REPO, "notebooks", "gansynth_colab.ipynb")
CELL_TIMEOUT = 600  # seconds per cell; all of TINY: ~25 s warm, ~90 s cold


def read_notebook():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  return nb


def parameters_index(nb) -> int:
  tagged = [i for i, c in enumerate(nb.cells)
            if "parameters" in c.metadata.get("tags", [])]
  assert len(tagged) == 1, "one cell tagged 'parameters' (papermill)"
  return tagged[0]


def test_committed_notebook_is_valid_and_has_no_outputs():
  nb = read_notebook()
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, cell.source
  params = nb.cells[parameters_index(nb)]
  assert nb.cells.index(params) == min(
      i for i, c in enumerate(nb.cells) if c.cell_type == "code")
  for name in ("CONFIG", "SOURCE", "WORKDIR", "DATA_DIR", "TINY", "SAVE_TO"):
    assert f"\n{name} = " in "\n" + params.source
  for line in params.source.splitlines():  # Colab form fields
    assert "# @param" in line, line


def fresh_venv(root) -> str:
  """A venv (no pip of its own) that sees this environment's packages, so
  the notebook's install cell installs gansynth into it and nowhere else;
  returns its python."""
  venv = root / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                 check=True)
  python = str(venv / "bin" / "python")
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig."
                         "get_paths()['purelib'])"], capture_output=True,
                        text=True, check=True).stdout.strip()
  with open(os.path.join(site, "zz_gansynth_test_deps.pth"), "w") as f:
    f.write("import site; site.addsitedir("
            f"{sysconfig.get_paths()['purelib']!r})\n")
  return python


def kernel_for(python: str, root) -> str:
  """A kernelspec that starts ipykernel with `python`."""
  kernel_dir = root / "kernels" / "gansynth-test"
  kernel_dir.mkdir(parents=True)
  spec = {"argv": [python, "-m", "ipykernel_launcher", "-f",
                   "{connection_file}"],
          "display_name": "gansynth test", "language": "python"}
  (kernel_dir / "kernel.json").write_text(json.dumps(spec))
  return "gansynth-test"


@pytest.mark.slow  # a fresh venv and the whole notebook
def test_notebook_installs_from_a_fresh_clone_and_runs_tiny(
    tmp_path, tfds_dir, monkeypatch):
  """Run all, headless, as on a fresh runtime: the install cell clones this
  repository (its committed HEAD) and installs it into a fresh venv."""
  nb = read_notebook()
  workdir, saved = tmp_path / "run", tmp_path / "saved"
  cwd = tmp_path / "content"
  cwd.mkdir()
  python = fresh_venv(tmp_path)
  nb.cells.insert(parameters_index(nb) + 1, nbformat.v4.new_code_cell(
      f"TINY = True\nWORKDIR = {str(workdir)!r}\nDATA_DIR = {tfds_dir!r}\n"
      f"SAVE_TO = {str(saved)!r}\nRUN_BENCH = True\n"
      f"SOURCE = {'file://' + REPO!r}\n"
      f"import sys\nassert sys.executable == {python!r}, sys.executable"))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
  kernel = kernel_for(python, tmp_path)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  client = nbclient.NotebookClient(
      nb, timeout=CELL_TIMEOUT, kernel_name=kernel,
      resources={"metadata": {"path": str(cwd)}})
  client.execute(env=env)  # raises CellExecutionError if any cell fails

  clone = cwd / "gansynth_repo"
  assert (clone / "configs" / "quickstart.py").exists()
  for run in ("quickstart", "svhn"):
    results = (workdir / run / "results.md").read_text()
    assert "| real | 1,437 |" in results and "| gan | 200 |" in results
    assert (workdir / run / "samples" / "gan_synthetic.png").exists()
    assert (saved / run / "results.json").exists()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  shown = [o.get("data", {}) for o in outputs]
  assert sum("image/png" in d for d in shown) >= 2 * 3  # 2 grids + curves
  assert sum("| real | 1,437 |" in d.get("text/markdown", "")
             for d in shown) == 2
  printed = "".join(o.get("text", "") for o in outputs
                    if o.get("output_type") == "stream")
  assert f"gansynth installed from git clone: {clone}" in printed
  assert f"configs from {clone} " in printed
  assert "WARNING: this runtime has no GPU or TPU" in printed
  assert "Run(" in printed  # gansynth.load in the notebook
  for name in ("auto", "vmap:matmul"):  # section 3, the benchmark, in-kernel
    assert re.search(rf"^  {re.escape(name)} +\d+ img/s", printed, re.M), printed
  text = "".join(o.get("text", "") for o in outputs)
  assert "GANs step 6/6" in text and "backend: cpu" in text


def test_load_config_overrides_like_the_command_line():
  config = notebook_utils.load_config("quickstart", {"gan.train_steps": 7})
  assert config.gan.train_steps == 7 and config.data.name == "sklearn_digits"
  with pytest.raises(ConfigError, match="Did you mean 'gan'"):
    notebook_utils.load_config("quickstart", {"gam.train_steps": 7})
  with pytest.raises(ConfigError, match="config.gan.batch_size='abc'"):
    notebook_utils.load_config("quickstart", {"gan.batch_size": "abc"})
  with pytest.raises(ConfigError, match="configs: .*svhn"):
    notebook_utils.load_config("svnh")
  tiny = notebook_utils.load_config("quickstart:tiny", {"gan.train_steps": 7})
  assert (tiny.gan.train_steps, tiny.gan.g_width) == (7, 4)
  assert tiny.data.name == "sklearn_digits"
  with pytest.raises(ConfigError, match="variant 'tyni'"):
    notebook_utils.load_config("quickstart:tyni")


def test_save_workdir_outside_colab(tmp_path):
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "results.md").write_text("x")
  assert notebook_utils.save_workdir(str(tmp_path / "run"), "") is None
  assert notebook_utils.save_workdir(
      str(tmp_path / "run"), "/content/drive/MyDrive/x") is None
  notebook_utils.save_workdir(str(tmp_path / "run"), str(tmp_path / "copy"))
  assert (tmp_path / "copy" / "results.md").read_text() == "x"
  (tmp_path / "run" / "samples").mkdir()
  (tmp_path / "run" / "samples" / "a.png").write_text("y")
  notebook_utils.copy_with_gfile(str(tmp_path / "run"), "ram://bucket/run/")
  assert tf.io.gfile.exists("ram://bucket/run/results.md")
  with tf.io.gfile.GFile("ram://bucket/run/samples/a.png") as f:
    assert f.read() == "y"
