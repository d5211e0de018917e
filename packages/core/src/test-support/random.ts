export { seededUniform as rng, randomFloats as randomArray } from '../random.js';
