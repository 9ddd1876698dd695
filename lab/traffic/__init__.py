"""Traffic generators of the lab, run inside host namespaces by one process per run
(:mod:`lab.traffic.generator`): probe flows at a fixed packet rate (:mod:`lab.traffic.probe`),
GPU-like collectives over TCP (:mod:`lab.traffic.collective`), and the maths of loss
windows (:mod:`lab.traffic.loss`)."""
