"""Training-data tools: Qt rcc reader (:mod:`hiif.data.rcc`) and the photo set builder (:mod:`hiif.data.trainset`)."""
