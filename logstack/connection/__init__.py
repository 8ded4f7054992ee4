"""Ways to reach a machine, behind one interface, and the machines of a site as targets."""
