"""The tuned presets (recipes.tuned_configs): every committed cell loads into valid configs of
every unlearning method, and a dataset without one is refused by name."""
import json

import pytest

from wsscl_fast.methods import METHODS, UNLEARNING_METHODS
from wsscl_fast.recipes import TUNED_PRESETS, recipe_for, tuned_configs


@pytest.mark.committed
def test_every_tuned_cell_gives_every_method_a_valid_config():
    presets = json.loads(TUNED_PRESETS.read_text())["presets"]
    assert presets, "no tuned presets committed"
    for dataset, cells in presets.items():
        for scenario, cell in cells.items():
            assert cell["trials_per_method"] >= 1 and cell["tuning_seeds"] and cell["commit"]
            configs = tuned_configs(dataset, scenario)
            assert set(configs) == set(UNLEARNING_METHODS)
            assert all(isinstance(c, METHODS[m].config_class) for m, c in configs.items())


def test_a_dataset_without_tuned_presets_is_refused(digits):
    with pytest.raises(ValueError, match="no tuned preset for digits/random; tuned presets exist for"):
        recipe_for(digits, tuned_for="random")
