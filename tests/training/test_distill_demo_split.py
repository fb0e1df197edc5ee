"""experiments/distill_demo.py's partially labelled splits, on a tiny Cityscapes-layout tree (run
in a subprocess: the script defines absl flags at import)."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import json, sys
from experiments.distill_demo import labelled_split
from tfseg.data.cityscapes import cityscapes_examples
split = labelled_split(sys.argv[1], 2, unlabelled=True, repeat=3)
print(json.dumps([split, [[e.id, e.label] for e in cityscapes_examples(sys.argv[1], split)]]))
"""


def test_repeated_labelled_images_and_unlabelled_ones(tmp_path):
    for i in range(6):
        for root, suffix in (("leftImg8bit", "_leftImg8bit.png"),
                             ("gtFine", "_gtFine_labelIds.png")):
            out = tmp_path / root / "train" / "town"
            out.mkdir(parents=True, exist_ok=True)
            value = 7 if root == "gtFine" else 100  # labelId 7: road
            Image.fromarray(np.full((4, 6, 3 if root == "leftImg8bit" else 1), value,
                                    np.uint8).squeeze()).save(out / f"town_000000_{i:06d}{suffix}")
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, check=True,
                          capture_output=True, text=True)
    split, examples = json.loads(done.stdout.strip().splitlines()[-1])
    assert split == "train_l2u_r3"
    labelled = [ident for ident, label in examples if np.array(Image.open(label)).any()]
    # 2 labelled images (every third: 0 and 3), each 3 times; the other 4 without labels
    assert sorted(labelled) == sorted(f"town_000000_{i:06d}{s}" for i in (0, 3)
                                      for s in ("", "_r1", "_r2"))
    assert len(examples) == 6 + 4 and all(Image.open(label).size == (6, 4)
                                          for _, label in examples)
