"""
@article{Mostosi2020,
title = "Haruspex: A Neural Network for the Automatic Identification of Oligonucleotides and Protein " #
        "Secondary Structure in Cryo-Electron Microscopy Maps",
author = {Mostosi, Philipp and Schindelin, Hermann and Kollmannsberger, Philip and Thorn, Andrea},
journal = {Angewandte Chemie International Edition},
volume = {59},
number = {35},
pages = {14788--14795},
year = {2020},
doi = {10.1002/anie.202000421},
url = {https://doi.org/10.1002/anie.202000421}
}

@article{Wang2023,
title = "CryoREAD: de novo structure modeling for nucleic acids in cryo-EM maps using deep learning",
author = {Wang, Xiao and Terashi, Genki and Kihara, Daisuke},
journal = {Nature Methods},
volume = {20},
pages = {1739--1747},
year = {2023},
doi = {10.1038/s41592-023-02032-5},
url = {https://doi.org/10.1038/s41592-023-02032-5}
}
"""
