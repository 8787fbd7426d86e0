"""The ablation command: its variants and one tiny run of the table."""

import json

import pytest

from gansynth.scoring import ablation


def test_variants_turn_each_technique_of_the_recipe_off(tiny_config):
  gan = tiny_config.gan
  assert ablation.variants(tiny_config) == {"recipe": {}}
  gan.loss = "hinge"
  gan.ema_decay = 0.99
  gan.diffaugment = "translation"
  assert ablation.techniques_on(gan) == ["diffaugment", "ema", "hinge"]
  assert ablation.variants(tiny_config) == {
      "recipe": {},
      "no_diffaugment": {"diffaugment": ""},
      "no_ema": {"ema_decay": 0.0},
      "no_hinge": {"loss": "bce"},
      "none": {"diffaugment": "", "ema_decay": 0.0, "loss": "bce"}}
  off = ablation.variant_config(tiny_config, {"loss": "bce"})
  assert off.gan.loss == "bce" and tiny_config.gan.loss == "hinge"


@pytest.mark.slow  # four tiny runs
def test_tiny_ablation_writes_one_row_per_variant(tiny_config, tmp_path):
  tiny_config.gan.ema_decay = 0.9
  rows = ablation.run(tiny_config, str(tmp_path))
  assert list(rows) == ["recipe", "no_ema"]
  assert rows["recipe"]["techniques"] == ["ema"]
  assert rows["no_ema"]["techniques"] == []
  for r in rows.values():
    assert len(r["cas_per_class"]) == 10 and r["seconds"] > 0
    assert len(r["recall_per_class"]) == 10 and r["frechet"] > 0
  # The two variants trained different generators.
  assert rows["recipe"]["frechet"] != rows["no_ema"]["frechet"]
  table = (tmp_path / "ablation.md").read_text()
  assert "| recipe | ema |" in table and "| no_ema | - |" in table
  stored = json.loads((tmp_path / "ablation.json").read_text())
  assert set(stored["rows"]) == {"recipe", "no_ema"}
