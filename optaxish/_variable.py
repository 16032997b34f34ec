"""``optaxish.Variable``: the mutable box that the Keras-style facade updates.

A ``Variable`` holds one ``jax.Array`` and replaces it on ``assign``. It reads
like a ``tf.Variable`` in arithmetic, comparisons and indexing, so a
zero-argument loss closure over variables looks like Keras code::

    w = optaxish.Variable([1.0, 2.0])
    loss = lambda: jnp.sum(w ** 2)

**Differentiating and compiling through variables: ``Variable._bind``.** A
``Variable`` is a mutable box, deliberately *not* a pytree, so ``jax.grad``
and ``jax.jit`` cannot see through it. The facade instead turns a loss closure
into a pure function of the variables' values with the internal context
manager ``Variable._bind(variables, values)``: inside the ``with`` block (on
the current thread only) each variable's ``value`` is the given value, which
may be a tracer::

    def pure_loss(values):
        with Variable._bind(variables, values):
            return loss()

    grads = jax.jit(jax.grad(pure_loss))([v.value for v in variables])

``pure_loss`` depends only on its argument, so its compiled form is reused
for new values (no retracing). Inside a bind block, ``assign`` (and
``assign_add``/``assign_sub``) never touch the box: the new value is recorded
in the scope object that ``_bind`` yields (``scope.assigned``, a list of
``(variable, value)`` pairs) and later reads in the block see it, so traced
values never leak into a variable; the caller decides whether to commit them.
A variable read in the block but not bound is recorded in
``scope.unbound_reads``: its current value was baked into the trace as a
constant, which the facade must treat as a reason to bind it too.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_COUNTER = itertools.count()
_DEFAULT_NAMES = itertools.count()
_LOCAL = threading.local()
# Its id keys, in a `copy.deepcopy` memo, the hooks to run when a variable is
# copied later in the same call (see `_share_in_deepcopy`).
_PENDING = object()


def _share_in_deepcopy(
    var: Variable, memo: dict[int, Any], on_copy: Callable[[Variable], None]
) -> Variable:
    """The variable an object being deep-copied (``memo``) should refer to.

    For an object that tracks variables without owning them (an optimizer,
    as tf-keras' keeps tracking the same variables): the copy of ``var`` if
    this ``copy.deepcopy`` call has made one, else ``var`` itself, and
    ``on_copy(copy)`` runs if the call copies ``var`` later (as in
    ``copy.deepcopy((optimizer, variables))``, where the optimizer comes
    first).
    """
    copied = memo.get(id(var))
    if copied is not None:
        return copied
    memo.setdefault(id(_PENDING), {}).setdefault(id(var), []).append(on_copy)
    return var


def _stack() -> list[_BindScope]:
    if not hasattr(_LOCAL, "stack"):
        _LOCAL.stack = []
    return _LOCAL.stack


@functools.lru_cache(maxsize=64)
def _kind(dtype: Any) -> int | None:
    """Rank of a dtype's kind: bool < integer < floating < complex."""
    if dtype == np.bool_:
        return 0
    for rank, kind in enumerate((jnp.integer, jnp.floating, jnp.complexfloating)):
        if jnp.issubdtype(dtype, kind):
            return rank + 1
    return None


# NumPy's own dtypes: a cast between two of them rounds once, to nearest even.
_HOST_DTYPES = frozenset(
    np.dtype(t)
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8)
    + (np.uint16, np.uint32, np.uint64, np.float32, np.float64, np.complex64)
    + (np.complex128,)
)


def _casts_on_host(src: Any, dtype: Any) -> bool:
    """Whether NumPy may cast ``src`` data to ``dtype`` before the transfer:
    both NumPy's own dtypes, and ``dtype`` one that JAX keeps as it is (not a
    64-bit dtype with x64 off, which JAX would narrow)."""
    if dtype is None:
        return False
    target = np.dtype(dtype)
    return (
        np.dtype(src) in _HOST_DTYPES
        and target in _HOST_DTYPES
        and jax.dtypes.canonicalize_dtype(target) == target
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _python_array(value: Any) -> np.ndarray:
    """Python numbers and lists get tf's dtypes: float32, int32, complex64."""
    array = np.asarray(value)
    if hasattr(value, "dtype"):  # NumPy data keeps its dtype, as in tf.
        return array
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype == np.complex128:
        return array.astype(np.complex64)
    if array.dtype == np.int64 and array.size and np.abs(array).max() < 2**31:
        return array.astype(np.int32)
    return array


class _BindScope:
    """What ``Variable._bind`` yields: the bound and assigned values."""

    def __init__(self) -> None:
        self._values: dict[int, tuple[Variable, Any]] = {}
        self._assigned: dict[int, tuple[Variable, Any]] = {}
        self._unbound: dict[int, Variable] = {}

    @property
    def assigned(self) -> list[tuple[Variable, Any]]:
        """``(variable, new_value)`` for each variable assigned in the block."""
        return list(self._assigned.values())

    @property
    def unbound_reads(self) -> list[Variable]:
        """Variables read in the block without being bound (their values were
        used as constants)."""
        return list(self._unbound.values())


class _Ref:
    """A hashable reference to a variable (``Variable.ref()``), by identity."""

    __slots__ = ("_variable",)

    def __init__(self, variable: Variable) -> None:
        self._variable = variable

    def deref(self) -> Variable:
        """Returns the variable."""
        return self._variable

    def __hash__(self) -> int:
        return id(self._variable)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ref) and other._variable is self._variable


class Variable:
    """A mutable, named array: the JAX counterpart of ``tf.Variable``.

    ``value`` is an immutable ``jax.Array``; ``assign`` replaces it. Operators
    (``+ - * / // % ** @``, comparisons, ``-v``, ``abs``, ``v[i]``) return
    ``jax.Array``\\ s, as tf returns tensors. ``jnp.asarray(v)`` and
    ``jnp.array(v)`` use ``__jax_array__``; but most ``jax.numpy`` and
    ``jax.nn`` functions given ``v`` itself (``jnp.sum(v)``, ``jnp.tanh(v)``,
    ``jax.nn.relu(v)``), even outside ``jit``, raise JAX's "Triggering
    __jax_array__() during abstractification is no longer supported" (they
    are jitted inside, recent JAX wants a pytree there, and a mutable box is
    not one; ``tf.tanh(v)`` works in TF), so write ``jnp.sum(v.value)`` or
    ``jnp.sum(v ** 2)``. ``np.asarray(v)``,
    ``v.numpy()``, ``float(v)``, ``int(v)``, ``len(v)`` and iteration work
    as on arrays. Like ``tf.Variable``, ``==`` is elementwise and a variable
    is unhashable: key dicts with ``v.ref()``.

    **Not a pytree** (it is a mutable box): ``jax.tree`` functions see a
    leaf and ``jax.jit`` rejects it as an argument; pass ``v.value``. A jitted
    function closing over ``v`` reads its value once, at trace time; to
    differentiate or compile with respect to variables, bind their values
    with ``Variable._bind`` (see the module docstring). Thread compatible:
    concurrent ``assign`` calls on one variable need a lock, as in tf.

    Args:
      initial_value: an array-like, another ``Variable`` (copied), or a
        zero-argument callable returning one. Python floats become float32
        and Python ints int32, as in tf, whatever ``jax_enable_x64`` says.
      trainable: whether optimizers should train it (read-only afterwards).
      name: the name; ``":0"`` is appended as tf does (``"w"`` gives
        ``"w:0"``). By default ``"Variable:0"``, then ``"Variable_1:0"``,
        ``"Variable_2:0"``, ... (unique within the process).
      dtype: cast ``initial_value`` to this dtype; a cast to a lower kind
        (float to int, complex to float, number to bool) is a ``TypeError``.
      constraint: ``None`` or a callable applied by optimizers after each
        update (``var.assign(constraint(var))``); not applied by ``assign``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish._variable import Variable  # optaxish.Variable
      >>> v = Variable([1.0, 2.0], name="w")
      >>> v
      <optaxish.Variable 'w:0' shape=(2,) dtype=float32, numpy=array([1., 2.], dtype=float32)>
      >>> 3 * v * v
      Array([ 3., 12.], dtype=float32)
      >>> jnp.sum(v ** 2)
      Array(5., dtype=float32)
      >>> v.assign_add([0.5, 0.5]).numpy()
      array([1.5, 2.5], dtype=float32)
    """

    __array_priority__ = 100  # NumPy defers to our reflected operators.

    def __init__(
        self,
        initial_value: Any,
        trainable: bool = True,
        name: str | None = None,
        dtype: Any = None,
        constraint: Callable[[Any], Any] | None = None,
    ) -> None:
        if name is None:
            index = next(_DEFAULT_NAMES)
            shared = "Variable" if index == 0 else f"Variable_{index}"
        elif isinstance(name, str) and name:
            shared = name
        else:
            raise TypeError(
                f"Argument `name` must be a non-empty string or None. Received: name={name!r}"
            )
        if constraint is not None and not callable(constraint):
            raise ValueError(
                "Argument `constraint` must be None or a callable. "
                f"Received: constraint={constraint!r}"
            )
        if initial_value is None:
            raise ValueError(
                f"Cannot create variable '{shared}:0': `initial_value` must be specified."
            )
        if callable(initial_value) and not isinstance(initial_value, Variable):
            initial_value = initial_value()
        self._shared_name = shared  # tf's name without ":0"; slot names use it.
        self._name = f"{shared}:0"
        self._unique_id = next(_COUNTER)
        self._trainable = bool(trainable)
        self._constraint = constraint
        target = None if dtype is None else jnp.dtype(dtype)
        self._value: jax.Array = self._untraced(
            self._convert(initial_value, target, "create"), "create"
        )

    def _untraced(self, value: jax.Array, action: str) -> jax.Array:
        """Refuses to store a tracer in the box (it would leak)."""
        if isinstance(value, jax.core.Tracer):
            raise TypeError(
                f"Cannot {action} variable '{self._name}' with a value traced by a "
                "JAX transformation (jit, grad, ...): a variable would keep the "
                "tracer. Inside a transformation, assign only within "
                "`Variable._bind`, or return the new value instead."
            )
        return value

    def __deepcopy__(self, memo: dict[int, Any]) -> Variable:
        # A new box (with a new unique id) around a copy of the array: an
        # optimizer step donates, and so deletes, the array it consumes.
        clone = object.__new__(Variable)
        memo[id(self)] = clone
        clone.__dict__.update(self.__dict__, _unique_id=next(_COUNTER))
        clone.__dict__.pop("_store", None)  # the copy owns its array
        clone.__dict__["_array"] = jnp.array(self._value, copy=True)
        pending = memo.get(id(_PENDING))
        if pending:  # objects copied earlier in this call that track this one
            for on_copy in pending.pop(id(self), ()):
                on_copy(clone)
        return clone

    def __copy__(self) -> Variable:
        return self.__deepcopy__({})

    # -- conversion ---------------------------------------------------------

    def _convert(self, value: Any, dtype: Any, action: str) -> jax.Array:
        """``value`` as an array of ``dtype`` (``None``: its own), or raise."""
        prefix = f"Cannot {action} variable '{self._name}'"
        if isinstance(value, Variable):
            value = value.value
        if isinstance(value, jax.core.Tracer):
            array = value
        else:
            try:
                array = value if isinstance(value, jax.Array) else _python_array(value)
            except (TypeError, ValueError) as e:
                raise TypeError(
                    f"{prefix}: expected a numeric array-like. Received: {_short(value)}"
                ) from e
        src = array.dtype
        if _kind(src) is None or (dtype is not None and _kind(dtype) is None):
            raise TypeError(
                f"{prefix}: expected a numeric value. Received: {_short(value)} "
                f"(dtype {src})"
            )
        if dtype is not None and _kind(src) > _kind(dtype):
            raise TypeError(
                f"{prefix}: a value of dtype {src} cannot be cast to dtype {dtype} "
                f"without changing its kind. Received: {_short(value)}"
            )
        if isinstance(array, jax.core.Tracer):
            return jax.lax.convert_element_type(array, dtype or src)
        if dtype is None and isinstance(array, jax.Array):
            dtype = src  # Drops a weak type: a variable's dtype is fixed.
        elif isinstance(array, np.ndarray):
            # Overflow gives inf, as in XLA and tf, with no NumPy warning.
            with np.errstate(over="ignore", invalid="ignore"):
                if not _casts_on_host(src, dtype):
                    return jnp.array(array, dtype=dtype, copy=True)
                # NumPy rounds as XLA's convert does, and a transfer without
                # a dtype skips a device-side convert: half an assign's time.
                return jnp.array(array.astype(dtype, copy=False), copy=True)
        # A fresh buffer: the facade may donate it, the caller keeps theirs.
        return jnp.array(array, dtype=dtype, copy=True)

    # -- value --------------------------------------------------------------

    @property
    def _value(self) -> jax.Array:
        # The array itself, or, while an optimizer keeps this variable packed
        # with others in one buffer, a view read from that buffer.
        store = self.__dict__.get("_store")
        return self.__dict__["_array"] if store is None else store.read(self)

    @_value.setter
    def _value(self, value: jax.Array) -> None:
        store = self.__dict__.get("_store")
        if store is None:
            self.__dict__["_array"] = value
        else:
            store.write(self, value)

    @property
    def value(self) -> jax.Array:
        """The current value (the bound value inside ``Variable._bind``)."""
        stack = _stack()
        if stack:
            key = id(self)
            for scope in reversed(stack):
                hit = scope._values.get(key)
                if hit is not None and hit[0] is self:
                    return hit[1]
            stack[-1]._unbound[key] = self
        return self._value

    def numpy(self) -> np.ndarray:
        """The value as a new NumPy array."""
        return np.array(self.value)

    def assign(self, value: Any) -> Variable:
        """Sets the value; returns the variable (tf returns a variable-like view).

        ``value`` must have the variable's shape (no broadcasting, as in tf)
        and a dtype castable to it without changing kind (an int value for a
        float variable is fine; a float value for an int variable is not).
        On error the value is unchanged.

        Raises:
          ValueError: on a shape mismatch, naming the variable and both shapes.
          TypeError: on a non-numeric value or a dtype that cannot be cast.
        """
        new = self._checked(value, "value")
        stack = _stack()
        if stack:
            stack[-1]._values[id(self)] = (self, new)
            stack[-1]._assigned[id(self)] = (self, new)
        else:
            self._value = self._untraced(new, "assign to")
        return self

    def assign_add(self, delta: Any) -> Variable:
        """``assign(value + delta)``; ``delta`` must have the variable's shape."""
        return self.assign(self.value + self._checked(delta, "delta"))

    def assign_sub(self, delta: Any) -> Variable:
        """``assign(value - delta)``; ``delta`` must have the variable's shape."""
        return self.assign(self.value - self._checked(delta, "delta"))

    def _checked(self, value: Any, noun: str) -> jax.Array:
        new = self._convert(value, self.dtype, "assign to")
        if new.shape != self.shape:
            raise ValueError(
                f"Cannot assign to variable '{self._name}': shape mismatch. The "
                f"variable has shape {self.shape}; received a {noun} of shape "
                f"{tuple(new.shape)}."
            )
        return new

    # -- binding (internal, for the facade) -----------------------------------

    @staticmethod
    @contextlib.contextmanager
    def _bind(
        variables: Sequence[Variable], values: Sequence[Any]
    ) -> Iterator[_BindScope]:
        """Within the block, ``variables[i].value`` is ``values[i]``.

        Internal: how the facade differentiates and compiles closures over
        variables (see the module docstring). Values may be tracers; each must
        have its variable's shape and dtype. Bindings are per thread and nest
        (inner ones win); assignments in the block go to the yielded scope.

        Raises:
          ValueError: on a length or shape mismatch or a repeated variable.
          TypeError: on a non-variable or a dtype mismatch.
        """
        variables, values = list(variables), list(values)
        if len(variables) != len(values):
            raise ValueError(
                f"`variables` and `values` must have the same length. Received "
                f"{len(variables)} variables and {len(values)} values."
            )
        scope = _BindScope()
        for var, val in zip(variables, values):
            if not isinstance(var, Variable):
                raise TypeError(f"Expected a Variable. Received: {var!r}")
            if id(var) in scope._values:
                raise ValueError(f"Variable '{var.name}' is bound twice.")
            if not isinstance(val, jax.Array | jax.core.Tracer):
                val = jnp.asarray(val)
            if val.shape != var.shape or val.dtype != var.dtype:
                error = ValueError if val.shape != var.shape else TypeError
                raise error(
                    f"Cannot bind variable '{var.name}' (shape {var.shape}, dtype "
                    f"{var.dtype}) to a value of shape {tuple(val.shape)} and "
                    f"dtype {val.dtype}."
                )
            scope._values[id(var)] = (var, val)
        stack = _stack()
        stack.append(scope)
        try:
            yield scope
        finally:
            stack.remove(scope)

    # -- attributes ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The name, tf-style (``"Variable:0"``, ``"w:0"``)."""
        return self._name

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape (fixed at creation)."""
        return self._shape_dtype[0]

    @property
    def dtype(self) -> np.dtype:
        """The dtype (fixed at creation)."""
        return self._shape_dtype[1]

    @property
    def _shape_dtype(self) -> tuple[tuple[int, ...], np.dtype]:
        # Both are fixed at creation (`assign` keeps them), so they are read
        # once: every optimizer step checks them for every variable.
        cached = self.__dict__.get("_shape_dtype_cache")
        if cached is None:
            store = self.__dict__.get("_store")
            if store is not None:
                cached = (store.shape_of(self), store.dtype_of(self))
            else:
                value = self._value
                cached = (tuple(value.shape), value.dtype)
            self.__dict__["_shape_dtype_cache"] = cached
        return cached

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    @property
    def trainable(self) -> bool:
        """Whether optimizers should train this variable."""
        return self._trainable

    @property
    def constraint(self) -> Callable[[Any], Any] | None:
        """The projection optimizers apply after updates, or ``None``."""
        return self._constraint

    def ref(self) -> _Ref:
        """A hashable reference (compared by identity), as ``tf.Variable.ref``."""
        return _Ref(self)

    # -- Python and NumPy protocols -------------------------------------------

    def __jax_array__(self) -> jax.Array:
        return self.value

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self.value, dtype=dtype)

    def __repr__(self) -> str:
        head = (
            f"<optaxish.Variable '{self._name}' shape={self.shape} dtype={self.dtype}"
        )
        value = self.value
        if isinstance(value, jax.core.Tracer):
            return f"{head}, value={value}>"
        array = np.asarray(value)
        text = str(array[()]) if array.ndim == 0 else repr(array)
        return f"{head}, numpy={text}>"

    def __hash__(self) -> int:
        raise TypeError(
            "Variable is unhashable. Instead, use variable.ref() as the key. "
            f"(Variable: {self!r})"
        )

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError(
                f"len() of unsized object (variable '{self._name}' is a scalar)"
            )
        return self.shape[0]

    def __format__(self, spec: str) -> str:
        value = np.asarray(self.value)[()] if self.ndim == 0 else self.value
        return format(value, spec)


def _unwrap(x: Any) -> Any:
    return x.value if isinstance(x, Variable) else x


def _install_operators() -> None:
    """Defines the dunder methods that delegate to ``value``."""
    unary = {"iter": iter, "bool": bool, "float": float, "int": int}
    unary |= {"complex": complex, "index": operator.index, "neg": operator.neg}
    unary |= {"pos": operator.pos, "abs": abs, "invert": operator.invert}
    for name, fn in unary.items():

        def method(self: Variable, fn: Any = fn) -> Any:
            return fn(self.value)

        method.__name__ = f"__{name}__"
        setattr(Variable, method.__name__, method)
    binary = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul")
    for name in (*binary, "and", "or", "xor"):
        fn = getattr(operator, name if name not in ("and", "or") else name + "_")

        def forward(self: Variable, other: Any, fn: Any = fn) -> Any:
            return fn(self.value, _unwrap(other))

        def reflected(self: Variable, other: Any, fn: Any = fn) -> Any:
            return fn(_unwrap(other), self.value)

        forward.__name__, reflected.__name__ = f"__{name}__", f"__r{name}__"
        setattr(Variable, forward.__name__, forward)
        setattr(Variable, reflected.__name__, reflected)
    for name in ("lt", "le", "gt", "ge", "eq", "ne", "getitem"):

        def compare(self: Variable, other: Any, fn: Any = None) -> Any:
            return fn(self.value, _unwrap(other))

        compare.__defaults__ = (getattr(operator, name),)
        compare.__name__ = f"__{name}__"
        setattr(Variable, compare.__name__, compare)


_install_operators()
