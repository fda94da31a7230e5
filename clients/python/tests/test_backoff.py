"""The reconnect delay: full jitter over an exponentially growing, capped window."""
import random
import unittest

import support  # noqa: F401  (puts the package on the path)
from pm_agent_client import backoff_delay


class BackoffTest(unittest.TestCase):
    def test_window_doubles_until_the_cap(self):
        top = lambda: 1.0  # noqa: E731  (the top of [0, 1), as a limit)
        self.assertEqual([backoff_delay(n, 0.5, 5, top) for n in range(6)],
                         [0.5, 1.0, 2.0, 4.0, 5, 5])

    def test_delay_is_drawn_from_the_whole_window(self):
        self.assertEqual(backoff_delay(3, 1, 100, lambda: 0.0), 0.0)
        self.assertEqual(backoff_delay(3, 1, 100, lambda: 0.25), 2.0)

    def test_samples_spread_over_the_window(self):
        rng = random.Random(7)
        samples = [backoff_delay(4, 1, 10, rng.random) for _ in range(2000)]
        self.assertTrue(all(0 <= s < 10 for s in samples))
        self.assertAlmostEqual(sum(samples) / len(samples), 5, delta=0.4)
        self.assertLess(min(samples), 0.5)
        self.assertGreater(max(samples), 9.5)

    def test_huge_attempt_numbers_stay_at_the_cap(self):
        self.assertEqual(backoff_delay(10_000, 0.5, 30, lambda: 1.0), 30)

    def test_bad_parameters_are_refused(self):
        for args in ((-1, 1, 2), (0, 0, 2), (0, 3, 2)):
            with self.assertRaises(ValueError):
                backoff_delay(*args)


if __name__ == "__main__":
    unittest.main()
