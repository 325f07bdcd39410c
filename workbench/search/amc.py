"""AMC (He et al., ECCV 2018): a DDPG agent walks the groups and picks each one's preserve ratio.

The environment follows the authors' code (mit-han-lab/amc@65363c8, env/channel_pruning_env.py): the state of step t
is the layer embedding (index, type, input and output channels, stride, kernel size, weight count; then FLOPs
reduced so far, FLOPs the later groups can still remove, the previous action), every column min-max normalised over
the groups; the action a in [0, 1] is the fraction of the group's channels preserved; the action wall clips it to
[lbound, the largest value with which the budget stays reachable when every later group keeps only lbound], so an
episode always ends within the budget; the reward, at the episode's end, is the pruned network's validation accuracy
(their `acc_reward`, acc x 0.01 with acc in %). As in their training loop every transition of an episode gets the
episode's reward, minus a moving-average baseline (alpha 0.5), discount 1; exploration is Gaussian noise of scale
0.5, decaying by 0.95 per episode after a warm-up of uniform random episodes.

What differs: the agent is stable-baselines3's DDPG (one learning rate for actor and critic; their actor 1e-4, critic
1e-3), the noise is clipped to [0, 1] rather than drawn from a truncated normal, the baseline is updated per episode,
not per sampled batch, a group is a set of coupled channels (their layers), "rest" counts what later groups can still
remove (theirs: the later layers' FLOPs), and channels go by L1 norm, where AMC's channel pruning reconstructs each
layer by least squares. Episodes are trials of the study; started again, the agent replays the stored episodes with
their stored rewards (same seed, same actions) and evaluates only the new ones.
"""

from __future__ import annotations

import time

import numpy as np

from workbench.search import studies
from workbench.search.proxy import Evaluator
from workbench.search.space import SearchResult, SearchSpace


def embedding(space: SearchSpace) -> np.ndarray:
    """The static columns of the state, one row per group (index, type, in, out, stride, kernel, weights)."""
    modules = dict(space.model.named_modules())
    rows = []
    for t, name in enumerate(space.groups):
        m = modules[name]
        if hasattr(m, "kernel_size"):
            rows.append([t, 0, m.in_channels, m.out_channels, m.stride[0], m.kernel_size[0], m.weight.numel()])
        else:
            rows.append([t, 1, m.in_features, m.out_features, 0, 1, m.weight.numel()])
    return np.asarray(rows, dtype=np.float64)


def normalised(table: np.ndarray) -> np.ndarray:
    """Every column scaled to [0, 1] over the rows (a constant column is left as it is), as the authors' code."""
    out = table.astype(np.float64).copy()
    for j in range(out.shape[1]):
        low, high = out[:, j].min(), out[:, j].max()
        if high - low > 0:
            out[:, j] = (out[:, j] - low) / (high - low)
    return out


class PruningEnv:
    """The episode: one step per group; `evaluate(counts)` gives the reward of a finished network.

    A gymnasium.Env (built by `make_env`) wraps this so that the logic is testable without the RL library.
    """

    def __init__(self, space: SearchSpace, evaluate, lbound: float):
        self.space, self.evaluate, self.lbound = space, evaluate, lbound
        self.static = embedding(space)
        self.floor = space.kept(space.counts([1 - lbound] * len(space)))
        self.rewards: list[float] = []  # final reward of every finished episode (kept across resets)
        self.reset()

    def reset(self) -> np.ndarray:
        self.t, self.kept, self.actions, self.last = 0, list(self.space.units), [], 1.0
        return self.state()

    def state(self) -> np.ndarray:
        """The normalised static columns of group t, then reduced, rest and the previous action."""
        dense = self.space.budget.dense
        now = self.space.cost(self.space.from_kept(self.kept))
        later = list(self.kept[: self.t]) + self.floor[self.t :]
        rest = (now - self.space.cost(self.space.from_kept(later))) / dense
        row = normalised(self.static)[min(self.t, len(self.space) - 1)]
        return np.concatenate([row, [(dense - now) / dense, rest, self.last]]).astype(np.float32)

    def wall(self, action: float) -> int:
        """Channels kept by group t for `action`: clipped to [lbound, the most that keeps the budget reachable]."""
        t, units, step = self.t, self.space.units[self.t], self.space.planner.round_to or 1
        wanted = min(units, max(self.floor[t], int(round(float(np.clip(action, 0.0, 1.0)) * units))))
        trial = self.kept[:t] + [wanted] + self.floor[t + 1 :]
        while wanted > self.floor[t] and not self.space.fits(self.space.from_kept(trial)):
            wanted = max(self.floor[t], wanted - step)
            trial[t] = wanted
        return wanted

    def step(self, action: float) -> tuple[np.ndarray, float, bool, dict]:
        kept = self.wall(action)
        self.kept[self.t] = kept
        self.last = kept / self.space.units[self.t]
        self.actions.append(self.last)
        self.t += 1
        done = self.t == len(self.space)
        if not done:
            return self.state(), 0.0, False, {}
        reward = float(self.evaluate(self.space.from_kept(self.kept)))
        self.rewards.append(reward)
        return self.state(), reward, True, {"kept": list(self.kept)}


def episode_reward(buffer, steps: int, reward: float, baseline: float | None, alpha: float = 0.5) -> float:
    """Give the last `steps` transitions of a replay buffer (an episode) its final `reward` minus the moving
    baseline, updated first with this reward (AMC: every transition observes the final reward; moving average,
    alpha 0.5). Returns the new baseline."""
    baseline = reward if baseline is None else baseline + alpha * (reward - baseline)
    for back in range(1, steps + 1):
        buffer.rewards[(buffer.pos - back) % buffer.buffer_size] = reward - baseline
    return baseline


def make_env(env: PruningEnv):
    """`env` as a gymnasium.Env (observation: the 10 state columns; action: one preserve ratio in [0, 1])."""
    import gymnasium as gym

    class Env(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (10,), np.float32)
        action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return env.reset(), {}

        def step(self, action):
            obs, reward, done, info = env.step(float(np.asarray(action).reshape(-1)[0]))
            return obs, reward, done, False, info

    return Env()


def search(space: SearchSpace, evaluator: Evaluator, study, episodes: int, warmup: int, seed: int,
           lbound: float = 0.2, lr: float = 1e-3, noise: float = 0.5, noise_decay: float = 0.95,
           after=None) -> SearchResult:  # fmt: skip
    """Run `episodes` episodes (the first `warmup` random) of DDPG; the best-rewarded episode's widths."""
    import optuna
    import torch
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.noise import ActionNoise

    start = time.perf_counter()
    stored = studies.trace(study)
    distributions = {f"g{i:02d}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(len(space))}
    episode = {"n": 0}

    def evaluate(counts) -> float:
        n = len(env.rewards)  # episodes finished before this one
        if n < len(stored):  # resumed: the same seed replays the same actions; the stored reward stands
            if stored[n]["candidate"]["kept"] != space.kept(counts):
                raise RuntimeError(f"AMC replay diverged at episode {n}: the stored study is from another search")
            return stored[n]["proxy_top1"]
        score = evaluator(space.candidate(counts))
        attrs = {"episode": n, "candidate": space.describe(counts), "proxy_top1": score}
        studies.add_trial(study, {k: r for k, r in zip(distributions, space.ratios(counts), strict=True)},
                          distributions, score, attrs)  # fmt: skip
        if after is not None:
            after(study)
        return score

    env = PruningEnv(space, evaluate, lbound)
    groups = len(space)

    class DecayingNoise(ActionNoise):
        """Gaussian exploration of scale noise * noise_decay^(episodes after warm-up)."""

        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)

        def __call__(self) -> np.ndarray:
            sigma = noise * noise_decay ** max(0, episode["n"] - warmup)
            return self.rng.normal(0.0, sigma, size=1).astype(np.float32)

    class EpisodeReward(BaseCallback):
        """At each episode's end: every transition of it gets the final reward minus the moving baseline."""

        def __init__(self):
            super().__init__()
            self.baseline = None

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:  # after each episode (train_freq one episode), before the updates
            while episode["n"] < len(env.rewards):
                reward = env.rewards[episode["n"]]
                self.baseline = episode_reward(self.model.replay_buffer, groups, reward, self.baseline)
                episode["n"] += 1

    torch.manual_seed(seed)
    agent = DDPG(
        "MlpPolicy", make_env(env), learning_rate=lr, buffer_size=max(100 * groups, 64),
        learning_starts=warmup * groups, batch_size=64, tau=0.01, gamma=1.0, train_freq=(1, "episode"),
        gradient_steps=-1, action_noise=DecayingNoise(),
        policy_kwargs={"net_arch": [300, 300]}, seed=seed, device="cpu", verbose=0,
    )  # fmt: skip
    agent.set_logger(Logger(None, []))  # SB3's default logger makes a /tmp/SB3-<time> folder per search
    agent.learn(total_timesteps=episodes * groups, callback=EpisodeReward())
    trials = studies.trace(study)[:episodes]
    best = max(trials, key=lambda t: (t["proxy_top1"], -t["trial"]))
    extra = {"proxy": evaluator.mode, "warmup": warmup, "episodes": len(trials)}
    return SearchResult(space.from_kept(best["candidate"]["kept"]), trials, time.perf_counter() - start,
                        evaluator.evaluated, extra)  # fmt: skip
