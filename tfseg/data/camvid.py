"""CamVid reader (SegNet layout, 11 classes, raw 11 = void -> ignored).

::

    <data_dir>/{train,val,test}/*.png          images
    <data_dir>/{train,val,test}annot/*.png     labels (same file name, single-channel class ids)
"""

import os

from tfseg.data.core import (
    DatasetSpec,
    Example,
    list_files,
    require_dir,
    require_file,
    stem,
)
from tfseg.data.labels import camvid_table
from tfseg.registry import DATASETS


def _examples(root, split):
    images = list_files(os.path.join(root, split))
    annot = os.path.join(root, f"{split}annot")
    return [
        Example(im, require_file(os.path.join(annot, os.path.basename(im)), im), None, stem(im))
        for im in images
    ]


@DATASETS.register("camvid", label_format="trainIds", has_instances=False)
def camvid(data_dir):
    """CamVid, 11 classes (Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car,
    Pedestrian, Bicyclist)."""
    require_dir(data_dir)
    return DatasetSpec("camvid", data_dir, camvid_table(), lambda split: _examples(data_dir, split))
