"""The progress bar draws on a terminal and stays quiet otherwise."""
import io

from convzoo.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_draws_rate_and_eta_on_a_terminal():
    stream = Terminal()
    progress = Progress(3, "epoch 1/2", stream)
    for _ in range(3):
        progress.update(lambda: "loss 0.5000")
    progress.close()
    output = stream.getvalue()
    assert "epoch 1/2 [" in output and "3/3" in output and "it/s ETA 00:00 loss 0.5000" in output


def test_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(3, "epoch 1/2", stream)
    for _ in range(3):
        progress.update(lambda: "loss 0.5000")
    progress.close()
    assert stream.getvalue() == ""
