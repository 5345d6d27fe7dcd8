"""P1 joint (bilevel) methods (eqs. 13-15) and the retained-weight-floor problem;
:mod:`wdmoe_opt.builtin` registers them."""
