# Libraries import typing where sys.implementation.name is not "circuitpython" (the VM says
# "micropython"); on the board these imports never happen. Names only.
TYPE_CHECKING = False
Any = Callable = Dict = List = Optional = Protocol = Sequence = Tuple = Type = Union = object
Iterable = Iterator = Literal = Generator = object
