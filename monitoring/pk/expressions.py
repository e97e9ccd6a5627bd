"""Parameter expressions of model files, parsed once with a whitelist.

A model file writes each individual parameter as a small arithmetic expression of covariates
and ETAs (``"21.2 * (HCT / 35) ** -1.14 * exp(ETA_CL)"``). Python's own parser reads the
text into a syntax tree; only numbers, known names, ``+ - * / **``, unary signs and the
functions below are accepted, and the tree is turned into nested closures that work on numpy
arrays. Nothing is ever handed to ``eval``: a name such as ``__import__``, an attribute or a
call of any other function is refused with the token that caused it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import numpy as np

Values = Mapping[str, np.ndarray]
Compiled = Callable[[Values], np.ndarray]

FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], int | None]] = {
    # name: (implementation, number of arguments; None = two or more)
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "sqrt": (np.sqrt, 1),
    "min": (np.minimum, None),
    "max": (np.maximum, None),
}

_BINARY = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.divide),
    ast.Pow: ("**", np.power),
}

_OPERATOR_TOKENS = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.BitXor: "^",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
}


class ExpressionError(ValueError):
    """An expression that is not allowed; the message names the offending token."""


class Expression:
    """One parsed expression: its text, the names it reads, and a vectorised evaluator."""

    def __init__(self, text: str, allowed_names: set[str]):
        self.text = text
        self.names: set[str] = set()
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            token = (exc.text or text).strip()
            raise ExpressionError(f"cannot parse {token!r}: {exc.msg}") from None
        self._allowed = allowed_names
        self._evaluate = self._compile(tree.body)

    def __call__(self, values: Values) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self._evaluate(values)

    def _token(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text.strip(), node) or type(node).__name__

    def _compile(self, node: ast.AST) -> Compiled:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ExpressionError(f"token {self._token(node)!r} is not a number")
            number = float(node.value)
            return lambda values: np.asarray(number)
        if isinstance(node, ast.Name):
            name = node.id
            if name in FUNCTIONS:
                raise ExpressionError(f"token {name!r}: a function must be called, e.g. {name}(x)")
            if name not in self._allowed:
                raise ExpressionError(
                    f"token {name!r} is not a covariate, an ETA or an allowed function"
                )
            self.names.add(name)
            return lambda values: values[name]
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                symbol = _OPERATOR_TOKENS.get(type(node.op), type(node.op).__name__)
                raise ExpressionError(f"token {symbol!r}: operator not allowed (use + - * / **)")
            left, right, function = self._compile(node.left), self._compile(node.right), op[1]
            return lambda values: function(left(values), right(values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.USub):
                return lambda values: np.negative(operand(values))
            return operand
        if isinstance(node, ast.Call):
            return self._compile_call(node)
        if isinstance(node, ast.Attribute):
            raise ExpressionError(f"token {self._token(node)!r}: attribute access is not allowed")
        raise ExpressionError(f"token {self._token(node)!r} is not allowed in an expression")

    def _compile_call(self, node: ast.Call) -> Compiled:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(
                f"token {self._token(node.func)!r}: only {', '.join(FUNCTIONS)} may be called"
            )
        name = node.func.id
        if node.keywords:
            raise ExpressionError(f"token {self._token(node)!r}: keyword arguments not allowed")
        function, arity = FUNCTIONS[name]
        arguments = [self._compile(argument) for argument in node.args]
        if arity is not None and len(arguments) != arity:
            raise ExpressionError(f"token {self._token(node)!r}: {name} takes {arity} argument")
        if arity is None and len(arguments) < 2:
            raise ExpressionError(
                f"token {self._token(node)!r}: {name} takes two or more arguments"
            )
        if arity == 1:
            (only,) = arguments
            return lambda values: function(only(values))

        def reduce(values: Values) -> np.ndarray:
            result = arguments[0](values)
            for argument in arguments[1:]:
                result = function(result, argument(values))
            return result

        return reduce
