"""Connection limits and host names (lm_app/serve/connections.py), in-process."""
from lm_app.serve.connections import Connections, host_names


def test_connections_at_the_limit_close_the_longest_waiting_one():
    class Transport:
        aborted = False

        def abort(self):
            self.aborted = True

    connections = Connections(3)
    kept, first, second, third, fourth, fifth = (Transport() for _ in range(6))
    assert connections.admit(kept) and connections.admit(first) and connections.admit(second)
    connections.start_work(kept)
    connections.end_work(kept)  # answered: idle, kept alive, the oldest of all
    connections.start_work(first)  # first has a complete request: it is not closed for room
    assert connections.admit(third)
    assert second.aborted and not first.aborted and not kept.aborted  # the longest without a request
    connections.start_work(third)
    assert connections.admit(fourth)  # nobody left without a request: the longest idle goes
    assert kept.aborted
    connections.start_work(fourth)
    assert not connections.admit(fifth)  # every connection is working: the new one is refused
    connections.end_work(first)
    assert connections.admit(fifth) and first.aborted and not third.aborted


def test_host_names_of_a_loopback_server():
    assert host_names("127.0.0.1", 8501) == {"localhost:8501", "127.0.0.1:8501", "[::1]:8501"}
    assert "[::1]:80" in host_names("::1", 80) and "localhost" in host_names("::1", 80)
    assert "lm.example:9000" in host_names("LM.example", 9000)
    assert host_names("0.0.0.0", 8501) is None  # on every address: no name to check against
