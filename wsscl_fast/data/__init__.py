"""Data: formats and their cache (:mod:`.formats`), forget/retain scenarios
(:mod:`.scenarios`), batch augmentation (:mod:`.augment`) and loaders (:mod:`.loaders`).
The names below are the public API; the modules depend on each other in that order only."""
from .augment import augment_batch
from .formats import (CIFAR10_CLASSES, DATASETS, DEFAULT_VALIDATION_SIZE, FASHION_MNIST_ROOT, DataBundle,
                      ImageTensorDataset, default_data_root, load_bundle, load_cifar10_bundle, load_digits_bundle,
                      load_fashion_mnist_bundle, write_sample_ids)
from .loaders import DeviceLoader, as_loader, dataset_labels, dataset_names, image_tensors, make_loader, to_tensors
from .scenarios import (ForgetScenario, check_disjoint, class_forget_split, forgotten_scenario, index_forget_split,
                        make_scenario, random_forget_split, read_index_file, removed_classes, request_scenario,
                        retain_without, subset_rows, subset_without, with_removed_classes_apart, without)

__all__ = ["CIFAR10_CLASSES", "DATASETS", "DEFAULT_VALIDATION_SIZE", "FASHION_MNIST_ROOT", "DataBundle", "DeviceLoader",
           "ForgetScenario", "ImageTensorDataset", "as_loader", "augment_batch", "check_disjoint", "class_forget_split", "dataset_labels",
           "dataset_names", "default_data_root", "forgotten_scenario", "image_tensors", "index_forget_split", "load_bundle",
           "load_cifar10_bundle", "load_digits_bundle", "load_fashion_mnist_bundle", "make_loader", "make_scenario",
           "random_forget_split", "read_index_file", "removed_classes", "request_scenario", "retain_without", "subset_rows", "subset_without", "to_tensors", "with_removed_classes_apart", "without",
           "write_sample_ids"]
