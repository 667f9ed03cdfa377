"""Bad input gets a clear exception naming the function and argument, expected versus
received; never a crash or silent garbage."""
import numpy as np
import pytest

from cnnx import ops

X = np.zeros((2, 8, 8, 3), np.float32)
K = np.zeros((3, 3, 3, 4), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: ops.conv(np.zeros((8, 8, 3)), K), ValueError,
     r"conv2d: `inputs` must be 4-D \(batch, height, width, channels\), "
     r"received shape \(8, 8, 3\)"),
    (lambda: ops.conv(X, np.zeros((3, 3, 3))), ValueError, r"`kernel` must be 4-D"),
    (lambda: ops.conv(X, np.zeros((3, 3, 5, 4))), ValueError,
     r"kernel expects 5 input channels .* input has 3"),
    (lambda: ops.conv(X, np.zeros((9, 3, 3, 4))), ValueError,
     r"dilated size \(9, 3\) is larger than the input's height and width \(8, 8\)"),
    (lambda: ops.conv(X, K, dilation_rate=4), ValueError, r"dilated size \(9, 9\)"),
    (lambda: ops.conv(X, K, strides=0), ValueError, r"`strides` must be >= 1, received 0"),
    (lambda: ops.conv(X, K, strides=(1, -2)), ValueError, r"`strides` must be >= 1"),
    (lambda: ops.conv(X, K, strides=(1, 2, 3)), ValueError, r"tuple of 2 ints"),
    (lambda: ops.conv(X, K, strides=1.5), TypeError, r"`strides` must be an int"),
    (lambda: ops.conv(X, K, padding="full"), ValueError,
     r"`padding` must be 'valid' or 'same', received 'full'"),
    (lambda: ops.conv(X, K, data_format="channels_first"), ValueError, r"channels_last"),
    (lambda: ops.conv2d(X, K, bias=np.zeros(5)), ValueError,
     r"`bias` must have shape \(4,\), received shape \(5,\)"),
    (lambda: ops.conv2d(X, K, activation="tanh"), ValueError, r"fused epilogues"),
    (lambda: ops.conv(X.astype(np.complex64), K), TypeError,
     r"`inputs` must hold real numbers .* received dtype complex64"),
    (lambda: ops.conv(np.array([["a"]]), K), TypeError, r"received dtype <U1"),
    (lambda: ops.conv2d_backward(X, K, np.zeros((2, 5, 5, 4))), ValueError,
     r"`dy` must have the forward output's shape \(2, 6, 6, 4\), received \(2, 5, 5, 4\)"),
    (lambda: ops.max_pool(X, 0), ValueError, r"`pool_size` must be >= 1"),
    (lambda: ops.max_pool(X, 2, strides=0), ValueError, r"`strides` must be >= 1"),
    (lambda: ops.max_pool(X, 9), ValueError, r"`pool_size` \(9, 9\) is larger"),
    (lambda: ops.max_pool(X[0], 2), ValueError, r"max_pool2d: `inputs` must be 4-D"),
    (lambda: ops.average_pool(X, (2, 2, 2)), ValueError, r"tuple of 2 ints"),
    (lambda: ops.max_pool2d_backward(np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4, 3)),
                                     X.shape), TypeError, r"int32 array from max_pool2d"),
    (lambda: ops.max_pool2d_backward(np.zeros((2, 4, 4, 3)),
                                     np.full((2, 4, 4, 3), 10 ** 6, np.int32), X.shape),
     ValueError, r"indices outside \[0, 192\)"),
    (lambda: ops.dense(np.zeros((4, 5)), np.zeros((6, 2))), ValueError,
     r"dense: the kernel expects 6 input features .* input has 5"),
    (lambda: ops.dense(np.zeros(5), np.zeros((5, 2))), ValueError,
     r"`inputs` must be 2-D \(batch, features\), received shape \(5,\)"),
    (lambda: ops.softmax_cross_entropy(np.zeros((3, 4)), np.zeros((3, 5))), ValueError,
     r"`targets` must have the logits' shape \(3, 4\), received \(3, 5\)"),
    (lambda: ops.softmax(np.zeros((2, 3)), axis=2), ValueError, r"`axis` must be in"),
    (lambda: ops.conv2d(X, K, out=np.zeros((2, 6, 6, 4))), ValueError,
     r"`out` must be .* shape \(2, 6, 6, 4\) and dtype float32, received .* dtype float64"),
    (lambda: ops.conv2d_backward(X, K, np.zeros((2, 6, 6, 4), np.float32), out=(None,)),
     ValueError, r"`out` must be a tuple of 3 arrays or None, received tuple of length 1"),
    (lambda: ops.max_pool2d(X, 2, out=np.zeros((2, 4, 4, 3), np.float32)), ValueError,
     r"`out` must be a tuple of 2 arrays or None, received ndarray"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_non_contiguous_and_other_dtypes_are_converted(rng):
    x = rng.standard_normal((2, 10, 10, 6))[:, ::2, ::2, ::2]  # strided view, float64
    k = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    assert not x.flags.c_contiguous
    y = ops.conv(x, k)
    assert y.dtype == np.float64  # float64 wins, as np.result_type would say
    np.testing.assert_allclose(y, ops.conv(np.ascontiguousarray(x), k.astype(np.float64)))
    xi = rng.integers(0, 5, (1, 4, 4, 1))
    assert ops.conv(xi, np.ones((2, 2, 1, 1), np.int64)).dtype == np.float32
    assert ops.relu(np.array([[-1, 2]], np.int8)).tolist() == [[0.0, 2.0]]
    assert ops.max_pool(xi.astype(np.float16), 2).dtype == np.float32
    nested = [[[[1.0], [2.0]], [[3.0], [4.0]]]]
    assert ops.max_pool(nested, 2).item() == 4.0
