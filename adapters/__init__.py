"""brain_ai.adapters: conversion to and from snnTorch and SpikingJelly."""
