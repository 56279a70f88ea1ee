"""A result class of the steering script's own, which the workers cannot import (it travels by value)."""
from collections import namedtuple

LocalResult = namedtuple("LocalResult", ["iov", "result"])
