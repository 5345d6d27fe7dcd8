"""Files: ``wdmoe-instance/1`` and ``wdmoe-solution/1`` (each JSON or .npz); atomic writes."""

from .atomic import atomic_write, atomic_write_bytes, atomic_write_text
from .instance_io import instance_from_dict, instance_to_dict, read_instance, write_instance
from .solution_io import (
    read_solution_dict,
    selection_mask,
    solution_to_dict,
    solution_to_json,
    write_solution,
)

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "instance_from_dict",
           "instance_to_dict", "read_instance", "write_instance", "read_solution_dict",
           "selection_mask", "solution_to_dict", "solution_to_json", "write_solution"]
