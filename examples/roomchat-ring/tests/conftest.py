import pytest

pytest.register_assert_rewrite("roomchat.testing")
