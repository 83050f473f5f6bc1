PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = {"loss": [2.0, 1.0], "val_loss": [2.1, 1.2], "accuracy": [0.3, 0.6], "val_accuracy": [0.3, 0.5]}


def test_the_curves_wait_while_a_draw_would_cost_more_than_its_share_and_the_final_one_always_draws(tmp_path):
    from lm_app.plot import Curves

    path = tmp_path / "curves.png"
    curves = Curves(path, share=0.05, first_guess=3600)  # a draw "costs an hour": never due at an epoch end
    curves.epoch_end(HISTORY)
    assert not path.exists()
    curves.final(HISTORY)
    assert path.read_bytes()[:8] == PNG
    assert curves.cost < 3600  # re-measured at the draw
    path.unlink()
    curves.final(HISTORY)  # the same history is not drawn twice
    assert not path.exists()
    curves.final({"loss": [2.0, 1.0, 0.5]})
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # atomic: no temporary left


def test_an_epoch_end_draws_once_drawing_is_cheap_beside_the_time_since_the_last_draw(tmp_path):
    from lm_app.plot import Curves

    curves = Curves(tmp_path / "curves.png", first_guess=0)
    curves.epoch_end(HISTORY)
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    assert curves.drawn == HISTORY
    curves.final(HISTORY)  # nothing new to draw
    assert curves.drawn == HISTORY
