"""A nanoGPT-shaped project without torch: the same scripts' shapes, plain-Python stand-ins.

- ``data/shakespeare_char/prepare.py`` reads ``input.txt`` next to its ``__file__`` and writes
  ``train.bin``, ``val.bin`` and ``meta.pkl`` next to itself (as nanoGPT's does);
- ``train.py`` sets defaults, then ``exec(open('configurator.py').read())``: a positional config
  file and ``--key=value`` overrides parsed with ``literal_eval`` and a type check (``--compile=False``
  must arrive as a bool); it reads the prepared data and writes ``out_dir/ckpt.pt`` and
  ``out_dir/metrics.json``;
- ``sample.py`` reads the checkpoint (a dep: train's out) and ``params.yaml``'s ``sample`` section
  (list-form params), and writes ``samples.txt``.

Every script appends its name to ``$CALLS_LOG`` so tests count executions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

CONFIGURATOR = """\
import sys
from ast import literal_eval
for arg in sys.argv[1:]:
    if '=' not in arg:
        # assume it's the name of a config file
        assert not arg.startswith('--')
        config_file = arg
        print(f"Overriding config with {config_file}:")
        with open(config_file) as f:
            print(f.read())
        exec(open(config_file).read())
    else:
        # assume it's a --key=value argument
        assert arg.startswith('--')
        key, val = arg.split('=')
        key = key[2:]
        if key in globals():
            try:
                attempt = literal_eval(val)
            except (SyntaxError, ValueError):
                attempt = val
            assert type(attempt) == type(globals()[key]), f"{key}: {type(attempt)} != {type(globals()[key])}"
            print(f"Overriding: {key} = {attempt}")
            globals()[key] = attempt
        else:
            raise ValueError(f"Unknown config key: {key}")
"""

PREPARE = """\
import os
import pickle
import sys

here = os.path.dirname(__file__)
with open(os.path.join(here, 'input.txt')) as f:
    data = f.read()
chars = sorted(set(data))
stoi = {ch: i for i, ch in enumerate(chars)}
n = len(data)
train_ids = bytes(stoi[c] for c in data[: int(n * 0.9)])
val_ids = bytes(stoi[c] for c in data[int(n * 0.9):])
with open(os.path.join(here, 'train.bin'), 'wb') as f:
    f.write(train_ids)
with open(os.path.join(here, 'val.bin'), 'wb') as f:
    f.write(val_ids)
with open(os.path.join(here, 'meta.pkl'), 'wb') as f:
    pickle.dump({'vocab_size': len(chars), 'itos': dict(enumerate(chars)), 'stoi': stoi}, f)
with open(os.environ['CALLS_LOG'], 'a') as f:
    f.write('prepare\\n')
print(f"vocab size: {len(chars)}")
"""

TRAIN = """\
import json
import os
import pickle

out_dir = 'out'
max_iters = 100
learning_rate = 6e-4
compile = True
device = 'cuda'
dataset = 'openwebtext'
exec(open('configurator.py').read())  # overrides from command line or config file

data_dir = os.path.join('data', dataset)
train_data = open(os.path.join(data_dir, 'train.bin'), 'rb').read()
meta = pickle.load(open(os.path.join(data_dir, 'meta.pkl'), 'rb'))
counts = [1] * meta['vocab_size']
loss = 10.0
for it in range(max_iters):
    counts[train_data[it % len(train_data)]] += 1
    loss = loss * (1 - learning_rate)
os.makedirs(out_dir, exist_ok=True)
checkpoint = {'counts': counts, 'iter_num': max_iters, 'config': {'compile': compile, 'device': device}}
with open(os.path.join(out_dir, 'ckpt.pt'), 'wb') as f:
    pickle.dump(checkpoint, f)
with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump({'train': {'loss': round(loss, 6), 'iters': max_iters}}, f)
with open(os.environ['CALLS_LOG'], 'a') as f:
    f.write('train\\n')
print(f"iter {max_iters}: loss {loss:.4f}")
"""

SAMPLE = """\
import os
import pickle

import yaml

out_dir = 'out'
exec(open('configurator.py').read())
params = yaml.safe_load(open('params.yaml'))['sample']
ckpt = pickle.load(open(os.path.join(out_dir, 'ckpt.pt'), 'rb'))
meta = pickle.load(open(os.path.join('data', 'shakespeare_char', 'meta.pkl'), 'rb'))
best = sorted(range(len(ckpt['counts'])), key=lambda i: -ckpt['counts'][i])
text = ''.join(meta['itos'][best[i % 3]] for i in range(params['num_chars']))
with open('samples.txt', 'w') as f:
    f.write(f"temperature {params['temperature']}: {text}\\n")
with open(os.environ['CALLS_LOG'], 'a') as f:
    f.write('sample\\n')
print(text)
"""

CONFIG = """\
# a tiny character-level model for tests
out_dir = 'out-tiny'
dataset = 'shakespeare_char'
max_iters = 5000
"""

MANIFEST = """\
stages:
  prepare:
    entry: data/shakespeare_char/prepare.py
    deps: [data/shakespeare_char/input.txt]
    outs: [data/shakespeare_char/train.bin, data/shakespeare_char/val.bin, data/shakespeare_char/meta.pkl]
  train:
    entry: train.py
    args: [config/train_tiny.py]
    params: {compile: false, device: cpu, max_iters: 20, learning_rate: 0.01}
    deps: [data/shakespeare_char/train.bin, data/shakespeare_char/meta.pkl]
    outs: [out-tiny]
    metrics: [out-tiny/metrics.json]
  sample:
    entry: sample.py
    args: [--out_dir=out-tiny]
    params: [sample.temperature, sample.num_chars]
    deps: [out-tiny/ckpt.pt, data/shakespeare_char/meta.pkl]
    outs: [samples.txt]
"""

PARAMS = """\
# sampling settings
sample:
  temperature: 0.8   # kept by modver's copy
  num_chars: 12
"""

FILES = {
    "configurator.py": CONFIGURATOR,
    "data/shakespeare_char/prepare.py": PREPARE,
    "data/shakespeare_char/input.txt": "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20,
    "train.py": TRAIN,
    "sample.py": SAMPLE,
    "config/train_tiny.py": CONFIG,
    "manifest.yaml": MANIFEST,
    "params.yaml": PARAMS,
    ".gitignore": ".modver/\nout-tiny/\nsamples.txt\n*.bin\n*.pkl\n",
}


def calls(log: Path) -> Counter[str]:
    """How many times each script ran."""
    return Counter(log.read_text().split()) if log.exists() else Counter()
