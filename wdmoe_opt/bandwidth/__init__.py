"""P3 bandwidth allocation methods (eqs. 19-21); :mod:`wdmoe_opt.builtin` registers them."""
