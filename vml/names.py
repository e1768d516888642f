"""Run names: random ``adjective-noun`` names and checks on names users pick."""

from __future__ import annotations

import random
import re
from collections.abc import Container

from vml.errors import UsageError

ADJECTIVES: tuple[str, ...] = (
    "able", "agile", "airy", "amber", "ample", "amused", "ancient", "arctic", "ardent",
    "artful", "astute", "atomic", "august", "autumn", "awake", "azure", "balmy",
    "bashful", "basic", "beaming", "bold", "bouncy", "brave", "breezy", "bright",
    "brilliant", "brisk", "bronze", "bubbly", "busy", "calm", "candid", "capable",
    "careful", "caring", "cheerful", "cheery", "chipper", "classic", "clean", "clever",
    "cloudy", "coastal", "cobalt", "comfy", "cosmic", "cozy", "crafty", "crimson",
    "crisp", "curious", "cushy", "daring", "dapper", "dashing", "dazzling", "decent",
    "deft", "dreamy", "devoted", "digital", "diligent", "distant", "dynamic", "eager",
    "early", "earnest", "easy", "electric", "elegant", "eloquent", "emerald", "epic",
    "exact", "expert", "fabulous", "fair", "faithful", "famous", "fancy", "fearless",
    "festive", "fiery", "fluent", "fluffy", "flying", "fond", "frank", "free", "fresh",
    "friendly", "frosty", "frugal", "funny", "fuzzy", "gallant", "gentle", "genuine",
    "giant", "gifted", "gleaming", "glad", "glowing", "golden", "graceful", "grand",
    "grateful", "great", "green", "groovy", "handy", "happy", "hardy", "harmonic",
    "hasty", "hearty", "helpful", "heroic", "honest", "hopeful", "humble", "icy",
    "ideal", "idle", "indigo", "jazzy", "jolly", "jovial", "joyful", "jumpy", "keen",
    "kind", "laser", "lavish", "leafy", "lean", "lemon", "level", "light", "lively",
    "logical", "loyal", "lucid", "lucky", "lunar", "lush", "magnetic", "majestic",
    "marble", "mellow", "merry", "mighty", "mindful", "minty", "misty", "modern",
    "modest", "mossy", "musical", "mystic", "natty", "neat", "nervous", "nifty",
    "nimble", "noble", "nordic", "novel", "oaken", "ocean", "olive", "optimal",
    "orange", "orbital", "orderly", "patient", "peaceful", "perky", "placid", "plucky",
    "polar", "polished", "polite", "prime", "proud", "purple", "quaint", "quick",
    "quiet", "quirky", "radiant", "rapid", "rare", "ready", "regal", "relaxed",
    "rested", "robust", "rosy", "royal", "ruby", "rustic", "sandy", "savvy", "scarlet",
    "serene", "sharp", "shiny", "silent", "silky", "silver", "simple", "sincere",
    "sleek", "smart", "smiling", "smooth", "snappy", "snowy", "solar", "solid", "sonic",
    "sparkling", "speedy", "spicy", "spry", "stable", "stellar", "steady", "stoic",
    "sturdy", "sunny", "super", "superb", "swift", "tactful", "tidy", "timely", "tiny",
    "tranquil", "trusty", "turbo", "twilight", "upbeat", "urban", "valiant", "velvet",
    "vibrant", "violet", "vital", "vivid", "warm", "wavy", "whimsical", "wise", "witty",
    "wooden", "zany", "zealous", "zesty", "zippy",
)

NOUNS: tuple[str, ...] = (
    "tron", "robot", "android", "cyborg", "droid", "automaton", "neuron", "tensor",
    "perceptron", "golem", "circuit", "synapse", "transistor", "servo", "gizmo",
    "actuator", "adapter", "algorithm", "amplifier", "antenna", "apparatus", "axon",
    "battery", "beacon", "binary", "bit", "bolt", "bot", "buffer", "byte", "cache",
    "capacitor", "chassis", "chip", "chipset", "clockwork", "cog", "compiler",
    "computer", "console", "controller", "core", "cortex", "cpu", "crawler", "cursor",
    "dendrite", "diode", "dynamo", "electron", "encoder", "engine", "epoch", "gadget",
    "gate", "gear", "gpu", "gradient", "gyro", "hologram", "hub", "integer", "kernel",
    "lattice", "layer", "lever", "logic", "loop", "machine", "magnet", "mainframe",
    "matrix", "mech", "mechanism", "microchip", "modem", "module", "monitor", "motor",
    "nanobot", "network", "node", "oscillator", "packet", "parser", "piston", "pixel",
    "pointer", "probe", "processor", "pulley", "qubit", "quark", "radar", "reactor",
    "register", "relay", "resistor", "rotor", "router", "scanner", "sensor", "shell",
    "signal", "silicon", "socket", "solenoid", "spark", "spindle", "sprocket", "stack",
    "switch", "terminal", "thread", "thruster", "titan", "token", "turbine", "unit",
    "vector", "voxel", "wafer", "widget", "wire", "bytecode", "cell", "agent", "mesh",
    "grid", "dial", "beeper", "blinker", "bleeper", "tinker", "rover", "walker",
    "sentinel", "guardian", "oracle", "scout", "pilot", "navigator", "cogwheel",
    "flywheel", "spring", "gasket", "rivet", "sprite", "daemon", "coder", "tracer",
    "hopper", "coil", "fuse", "nanite", "replicant", "autopilot", "mechanoid",
)

# Random picks before falling back to numeric suffixes; with ~40,000 combinations a
# miss this many times in a row means the pool is (nearly) exhausted.
_MAX_RANDOM_TRIES = 100

# No dots or slashes: a name can never leave `trainings/` or collide with
# `trainings/vml.db`.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def generate_name(
    taken: Container[str] = frozenset(), rng: random.Random | None = None
) -> str:
    """Return a random ``adjective-noun`` name that is not in ``taken``.

    After a bounded number of random misses, returns ``adjective-noun-N`` with the
    smallest free ``N >= 2``, so it always terminates and never returns a taken name.
    """
    rng = rng if rng is not None else random.Random()
    base = ""
    for _ in range(_MAX_RANDOM_TRIES):
        base = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        if base not in taken:
            return base
    suffix = 2
    while f"{base}-{suffix}" in taken:
        suffix += 1
    return f"{base}-{suffix}"


def validate_name(name: str) -> str:
    """Return a user-given run name without one leading ``@``, or raise `UsageError`.

    A valid name has 1-64 letters, digits, ``-`` or ``_`` and starts with a letter
    or digit.
    """
    stripped = name[1:] if name.startswith("@") else name
    if not _NAME_RE.fullmatch(stripped):
        raise UsageError(
            f"invalid run name {name!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return stripped
