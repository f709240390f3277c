"""The MATLAB-style bicubic downscale reproduces the benchmark's low-resolution images."""

import numpy as np

from frontends.lutnet.resize import imresize_down


def test_reproduces_set5_lr_x4(set5):
    for lr, hr in set5:
        np.testing.assert_array_equal(imresize_down(hr, 4), lr)


def test_constant_image_stays_constant():
    for v in (0, 255, 77):
        out = imresize_down(np.full((16, 12), v, np.uint8), 4)
        assert out.shape == (4, 3) and (out == v).all()
