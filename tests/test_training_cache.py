"""The quality benches' cache of trained originals and Retrains: a key names one model."""
import threading

import torch

from benchmarks.quality import cells


def _train(key, digits, tiny_recipe, seed=3):
    config = tiny_recipe.train.replace(epochs=1)
    return cells.cached_training(key, lambda: tiny_recipe.build_model(digits), digits.train, config, seed, key)


def test_a_seed_fixes_the_initial_weights_whatever_the_process_drew_before(tmp_path, monkeypatch, digits,
                                                                            tiny_recipe):
    monkeypatch.setattr(cells, "CACHE", tmp_path)
    torch.manual_seed(11)
    first, _ = _train("first", digits, tiny_recipe)
    torch.rand(1000)  # the default generator is elsewhere now: before the fix this changed the model
    torch.manual_seed(12)
    second, _ = _train("second", digits, tiny_recipe)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_cached_key_is_loaded_not_trained_again(tmp_path, monkeypatch, digits, tiny_recipe):
    monkeypatch.setattr(cells, "CACHE", tmp_path)
    trained, seconds = _train("original", digits, tiny_recipe)
    monkeypatch.setattr(cells, "train_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    loaded, loaded_seconds = _train("original", digits, tiny_recipe)
    assert loaded_seconds == seconds
    for (name, a), b in zip(trained.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_key_lock_makes_a_second_holder_wait_for_the_first(tmp_path):
    lock = tmp_path / "key.lock"
    acquired = threading.Event()

    def second_holder():
        with cells.exclusive_lock(lock):
            acquired.set()

    with cells.exclusive_lock(lock):
        thread = threading.Thread(target=second_holder)
        thread.start()
        assert not acquired.wait(0.3), "a second holder got the lock while the first held it"
    assert acquired.wait(30), "the second holder never got the lock after the first let go"
    thread.join()
