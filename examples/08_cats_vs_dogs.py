"""The course's practical: a CNN that tells cats from dogs, trained from folders of JPEGs
with ImageDataGenerator(...).flow_from_directory(...), then the feature maps of its first
layer on a cat photo."""
import os
import sys

import numpy as np

import cnnx
from cnnx.layers import Conv2D, Dense, Flatten, MaxPooling2D
from cnnx.models import Sequential
from cnnx.preprocessing import image
from cnnx.preprocessing.image import ImageDataGenerator

from _common import args, can_plot, shared_data

a = args(__doc__)
data = shared_data()
if data is None or not (data / "catsdogs").exists():
    sys.exit("no cats-and-dogs data: set CNNX_TEST_DATA to the course's data folder")
root = data / "catsdogs"
cnnx.utils.set_random_seed(0)

classifier = Sequential()
classifier.add(Conv2D(32, (3, 3), input_shape=(64, 64, 3), activation="relu"))
classifier.add(MaxPooling2D(pool_size=(2, 2)))
classifier.add(Conv2D(32, (3, 3), activation="relu"))
classifier.add(MaxPooling2D(pool_size=(2, 2)))
classifier.add(Flatten())
classifier.add(Dense(units=128, activation="relu"))
classifier.add(Dense(units=1, activation="sigmoid"))
classifier.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
print(cnnx.viz.plot_model(classifier))

train_datagen = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2,
                                   horizontal_flip=True)
test_datagen = ImageDataGenerator(rescale=1. / 255)
training_set = train_datagen.flow_from_directory(str(root / "training_set"),
                                                 target_size=(64, 64), batch_size=32,
                                                 class_mode="binary")
test_set = test_datagen.flow_from_directory(str(root / "test_set"), target_size=(64, 64),
                                            batch_size=32, class_mode="binary")
history = classifier.fit(training_set, epochs=1 if a.quick else 25, validation_data=test_set,
                         verbose=2)

cat = root / "test_set" / "cats" / "cat.4001.jpg"
x = image.img_to_array(image.load_img(str(cat), target_size=(64, 64))) / 255
p = float(classifier.predict(np.expand_dims(x, 0), verbose=0)[0][0])
names = {v: k for k, v in training_set.class_indices.items()}
print(f"{cat.name}: P(dog) = {p:.3f}, so: {names[int(p > 0.5)]}")
if can_plot():
    maps = os.path.join(a.out, "cat_feature_maps.png")
    cnnx.viz.plot_feature_maps(classifier, x, classifier.layers[0], maps)
    curves = os.path.join(a.out, "history.png")
    cnnx.viz.plot_history(history, curves)
    print(f"wrote {maps} and {curves}")
