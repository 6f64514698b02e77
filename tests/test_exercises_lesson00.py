from course_lib.exercises.lesson00 import check_d_k, check_weights_shape


def test_d_k_checker():
    assert check_d_k(lambda d, h: d // h)
    res = check_d_k(lambda d, h: d * h)
    assert not res and "expected" in res.message
    res = check_d_k(lambda d, h: 1 / 0)
    assert not res and "ZeroDivisionError" in res.message
    assert str(check_d_k(lambda d, h: d // h)).startswith("✅")


def test_weights_shape_checker():
    assert check_weights_shape(lambda B, h, q, k: (B, h, q, k))
    res = check_weights_shape(lambda B, h, q, k: (B, h, k, q))
    # (the swap may coincide with the right answer when T_q == T_k, but not five times in a row)
    assert not res and ("swapped" in res.message or "expected" in res.message)
