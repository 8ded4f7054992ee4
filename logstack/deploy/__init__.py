"""Plan and apply rendered files on machines: inspect, plan, apply, verify; enrolment of hosts."""
